/**
 * Host-key pinning for the SSH executor: the server's key must have one of the configured
 * SHA256 fingerprints (as `ssh-keygen -lf` prints them), checked before any credential is sent.
 */
import { createHash } from "node:crypto";

/** Thrown when the server's host key is not the pinned one. Never retried silently. */
export class HostKeyMismatchError extends Error {
  override readonly name = "HostKeyMismatchError";
}

/**
 * The SHA256 fingerprint of a raw SSH public key blob, as `ssh-keygen -l -E sha256` prints it.
 * @example fingerprintOf(keyBlob) // => "SHA256:q6JS2VHNFkXA07i5u771scZx6P0qxs9Q+O1Vxb24b7c"
 */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** Normalises a configured fingerprint: `SHA256:` prefix required, base64 padding ignored. */
export function parsePinnedHostKey(value: string | string[]): string[] {
  const items = (Array.isArray(value) ? value : value.split(","))
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => s.replace(/=+$/, ""));
  if (items.length === 0) {
    throw new Error("SLURMGATE_SSH_HOST_KEY is required in SSH mode (ssh-keygen -l -E sha256 -f host_key.pub)");
  }
  for (const item of items) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(item)) {
      throw new Error(
        `SLURMGATE_SSH_HOST_KEY must be a SHA256:<base64> fingerprint (got ${JSON.stringify(item)}); get it with: ssh-keyscan -p PORT HOST | ssh-keygen -lf - -E sha256`,
      );
    }
  }
  return items;
}

/**
 * Checks offered host keys against the pinned fingerprints; remembers the last refused one so
 * the connection error can name it.
 * @example
 * const pin = hostKeyPin(["SHA256:…"]); pin.verify(keyBlob) // => false, and pin.refused() is its fingerprint
 */
export function hostKeyPin(pinned: readonly string[]) {
  let refused: string | null = null;
  return {
    verify(keyBlob: Buffer): boolean {
      const offered = fingerprintOf(keyBlob);
      if (pinned.includes(offered)) {
        return true;
      }
      refused = offered;
      return false;
    },
    refused: (): string | null => refused,
    /** The error for a refused key: what was offered, what is pinned, and what to do. */
    mismatch(hostPort: string): HostKeyMismatchError {
      return new HostKeyMismatchError(
        `host key mismatch for ${hostPort}: the server offered ${refused}, SLURMGATE_SSH_HOST_KEY pins ${pinned.join(", ")}; refusing to connect (if the host key really changed, verify it out of band and update SLURMGATE_SSH_HOST_KEY)`,
      );
    },
  };
}
