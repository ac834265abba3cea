/**
 * The limits every executor applies to a command, in one place: the local and the SSH executor
 * import them, so a Slurm command behaves the same wherever it runs.
 */

/** Cap on captured output per stream; Slurm listings for thousands of jobs stay far below it. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Timeout for `run` when neither the call nor the executor's options give one. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Time between TERM and KILL once a command timed out. */
export const KILL_GRACE_MS = 2_000;

/**
 * Collects one output stream, keeping exactly its first `max` bytes: the cut does not depend on
 * how the bytes were chunked (a pipe and an SSH channel chunk them differently).
 * @example
 * const out = outputCap(4); out.push(Buffer.from("abc")); out.push(Buffer.from("def")); out.bytes() // => "abcd"
 */
export function outputCap(max: number = MAX_OUTPUT_BYTES) {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    push(chunk: Buffer): void {
      if (size < max) {
        const kept = chunk.length > max - size ? chunk.subarray(0, max - size) : chunk;
        chunks.push(kept);
        size += kept.length;
      }
    },
    bytes(): Buffer {
      return Buffer.concat(chunks, size);
    },
  };
}
