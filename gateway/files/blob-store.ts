/**
 * Where blob bytes live: outside libSQL, keyed by their sha-256 (64 lowercase hex, no `sha256:`).
 * Node: a directory (fs-blob-store.ts); Workers: R2. The database records who uploaded what.
 */

export interface BlobStore {
  /**
   * Streams `body` in, hashing as it goes. Rejects with BlobTooLarge as soon as more than
   * `maxBytes` arrived, and with BlobHashMismatch when `expectedSha256` is given and differs.
   * Nothing is visible under a hash until the whole body arrived and was verified; the same bytes
   * twice are stored once.
   */
  put(
    body: ReadableStream<Uint8Array>,
    opts: { maxBytes: number; expectedSha256?: string },
  ): Promise<{ sha256: string; size: number }>;
  head(sha256: string): Promise<{ size: number } | null>;
  /**
   * The blob's bytes, or the range `start..end` (both inclusive, like HTTP Range; end defaults to
   * the last byte). `size` is always the whole blob's size. `version` names the stored copy the
   * bytes come from: it changes whenever anything rewrites the blob (verified-read.ts relies on it).
   */
  get(
    sha256: string,
    range?: { start: number; end?: number },
  ): Promise<{ body: ReadableStream<Uint8Array>; size: number; version: string } | null>;
  /** Removes the blob; no error when it is absent. */
  delete(sha256: string): Promise<void>;
  /** The sha256 and size of the bytes held now under `sha256` (null if none): a damaged or swapped blob shows here. */
  rehash(sha256: string): Promise<{ sha256: string; size: number; version: string } | null>;
  /** A streaming sha-256 of this host (node:crypto on Node, crypto.DigestStream on Workers). */
  digester(): Digester;
}

export type Digester = {
  update(chunk: Uint8Array): Promise<void>;
  /** Lowercase hex. */
  digest(): Promise<string>;
};

/** rehash for any store: reads the whole blob through the store's own digester. */
export async function hashWhole(
  store: BlobStore,
  sha256: string,
): Promise<{ sha256: string; size: number; version: string } | null> {
  const whole = await store.get(sha256);
  if (!whole) {
    return null;
  }
  const digester = store.digester();
  const reader = whole.body.getReader();
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    size += value.byteLength;
    await digester.update(value);
  }
  return { sha256: await digester.digest(), size, version: whole.version };
}

export class BlobTooLarge extends Error {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super(`more than ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
    this.name = "BlobTooLarge";
  }
}

export class BlobHashMismatch extends Error {
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string) {
    super(`content hashes to sha256:${actual}, not sha256:${expected}`);
    this.expected = expected;
    this.actual = actual;
    this.name = "BlobHashMismatch";
  }
}

/** A host with no blob storage configured: every call refuses, so file routes answer 503. */
export class BlobStoreUnavailable extends Error {
  constructor(how?: string) {
    super(`no file storage is configured on this gateway${how ? ` (${how})` : ""}`);
    this.name = "BlobStoreUnavailable";
  }
}

/** `how` tells the operator what to configure; it goes into the 503's detail. */
export function unavailableBlobStoreFor(how?: string): BlobStore {
  const refuse = () => Promise.reject(new BlobStoreUnavailable(how));
  return {
    put: refuse,
    head: refuse,
    get: refuse,
    delete: refuse,
    rehash: refuse,
    digester: () => {
      throw new BlobStoreUnavailable(how);
    },
  };
}

export const unavailableBlobStore: BlobStore = unavailableBlobStoreFor();
