/**
 * Bearer tokens: 256 random bits, a kind prefix, stored only as a SHA-256 hash.
 * WebCrypto only, so the same code runs on Node and Workers.
 */
import type { TokenKind } from "../schemas/index.ts";

export const TOKEN_PREFIX: Record<TokenKind, string> = {
  user: "sgu_",
  agent: "sga_",
  admin: "sgk_",
};

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A new secret token of the given kind, e.g. `sgu_<43 chars>`. */
export function generateToken(kind: TokenKind): string {
  return TOKEN_PREFIX[kind] + base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The kind a token claims by its prefix, or undefined. The stored row is the authority. */
export function tokenKind(token: string): TokenKind | undefined {
  for (const [kind, prefix] of Object.entries(TOKEN_PREFIX)) {
    if (token.startsWith(prefix)) {
      return kind as TokenKind;
    }
  }
  return undefined;
}

/** Lowercase hex sha256 of a string's UTF-8 bytes (Web Crypto: the same on Node and Workers). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A token is stored only as its sha256. */
export const hashToken = sha256Hex;

/** Stable fingerprint of a JSON value (key order normalised), for idempotency checks. */
export async function hashJson(value: unknown): Promise<string> {
  return sha256Hex(canonicalJson(value));
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(",")}]`;
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
