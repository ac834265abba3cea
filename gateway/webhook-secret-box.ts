/**
 * Webhook secrets at rest. The gateway must read a secret back to sign with it, so it cannot store
 * a hash; with `SLURMGATE_WEBHOOK_SECRET_KEY` set (base64 of 32 bytes) it stores AES-256-GCM
 * ciphertext instead (`aesgcm:<iv>:<ciphertext>`, the webhook id as associated data, so a sealed
 * secret copied onto another webhook's row does not open). Without the key it stores the secret as
 * is, and the database is as sensitive as the secrets. WebCrypto only: Node and Workers alike.
 */
const PREFIX = "aesgcm:";

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

function importKey(key: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", unb64(key) as BufferSource, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** What to store for `secret` of webhook `id`. */
export async function sealSecret(secret: string, id: string, key: string | undefined): Promise<string> {
  if (key === undefined) {
    return secret;
  }
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(id) },
    await importKey(key),
    new TextEncoder().encode(secret),
  );
  return `${PREFIX}${b64(iv)}:${b64(new Uint8Array(sealed))}`;
}

/** The secret from what was stored; throws (with a reason for the delivery log) when it cannot. */
export async function openSecret(stored: string, id: string, key: string | undefined): Promise<string> {
  if (!stored.startsWith(PREFIX)) {
    return stored;
  }
  if (key === undefined) {
    throw new Error("the webhook secret is encrypted and SLURMGATE_WEBHOOK_SECRET_KEY is not set");
  }
  const [iv = "", data = ""] = stored.slice(PREFIX.length).split(":");
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: unb64(iv) as BufferSource, additionalData: new TextEncoder().encode(id) },
      await importKey(key),
      unb64(data) as BufferSource,
    );
    return new TextDecoder().decode(plain);
  } catch {
    throw new Error("the webhook secret does not decrypt with SLURMGATE_WEBHOOK_SECRET_KEY (another key?)");
  }
}
