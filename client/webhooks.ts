/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-signature` is
 * `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`, several separated by
 * spaces while a secret rotates. WebCrypto only, so Node, Deno, browsers and the gateway (which
 * signs with {@link signWebhook}) share it.
 *
 * @example
 * const ok = await verifyWebhook({ secret: process.env.SLURMGATE_WEBHOOK_SECRET, headers: req.headers, body: rawText });
 * if (!ok.valid) return new Response(ok.reason, { status: 400 });
 */

/** How far a delivery's timestamp may be from now, either way, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

const SECRET_PREFIX = "whsec_";

function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    out[i] = binary.charCodeAt(i);
  }
  return out;
}

function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

/** The key bytes of a `whsec_…` secret; throws on anything else. */
export function secretBytes(secret: string): Uint8Array {
  const base = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  let bytes: Uint8Array;
  try {
    bytes = base64ToBytes(base);
  } catch {
    throw new Error("the webhook secret is not whsec_ followed by base64");
  }
  if (bytes.length < 16) {
    throw new Error("the webhook secret is too short");
  }
  return bytes;
}

/** A fresh secret: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + bytesToBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/** `id.timestamp.` followed by the body's exact bytes. */
function signedContent(id: string, timestamp: number, body: string | Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${id}.${timestamp}.`);
  const tail = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const all = new Uint8Array(head.length + tail.length);
  all.set(head);
  all.set(tail, head.length);
  return all;
}

async function hmac(secret: string, content: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    secretBytes(secret) as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, content as BufferSource));
}

/** The `webhook-signature` value for one delivery. */
export async function signWebhook(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  return `v1,${bytesToBase64(await hmac(secret, signedContent(id, timestamp, body)))}`;
}

/** Compares without an early exit, so the time taken says nothing about where they differ. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) {
    diff |= (a[i] ?? 0) ^ (b[i % Math.max(b.length, 1)] ?? 0);
  }
  return diff === 0;
}

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

export type WebhookVerification = { valid: true; id: string; timestamp: number } | { valid: false; reason: string };

/**
 * Checks a delivery: the headers are there, the timestamp is within `toleranceSeconds` of now (a
 * replayed old delivery is refused), and one of the `v1` signatures matches the exact body bytes.
 * Pass the body as received (text or bytes), before any JSON parsing.
 */
export async function verifyWebhook(options: {
  secret: string;
  headers: WebhookHeaders;
  body: string | Uint8Array;
  toleranceSeconds?: number;
  /** Unix seconds; for tests. */
  now?: number;
}): Promise<WebhookVerification> {
  const id = header(options.headers, "webhook-id");
  const stamp = header(options.headers, "webhook-timestamp");
  const signatures = header(options.headers, "webhook-signature");
  if (!id || !stamp || !signatures) {
    return { valid: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };
  }
  if (!/^\d{1,12}$/.test(stamp)) {
    return { valid: false, reason: "webhook-timestamp is not unix seconds" };
  }
  const timestamp = Number(stamp);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (timestamp < now - tolerance) {
    return { valid: false, reason: "webhook-timestamp is too old" };
  }
  if (timestamp > now + tolerance) {
    return { valid: false, reason: "webhook-timestamp is in the future" };
  }
  let expected: Uint8Array;
  try {
    expected = await hmac(options.secret, signedContent(id, timestamp, options.body));
  } catch (error) {
    return { valid: false, reason: (error as Error).message };
  }
  let match = false;
  for (const part of signatures.split(" ")) {
    const [version, value] = part.split(",", 2);
    if (version !== "v1" || !value) {
      continue;
    }
    let given: Uint8Array;
    try {
      given = base64ToBytes(value);
    } catch {
      continue;
    }
    // No early return: every candidate is compared.
    match = constantTimeEqual(expected, given) || match;
  }
  return match ? { valid: true, id, timestamp } : { valid: false, reason: "no signature matches" };
}
