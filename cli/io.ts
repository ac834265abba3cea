/**
 * Everything the CLI touches outside itself, passed in so tests and the bin share one path.
 */
export type Writable = { write(text: string | Uint8Array): unknown; isTTY?: boolean };

export type Io = {
  stdout: Writable;
  stderr: Writable;
  /** Reads all of stdin (for `--token -`, `--script -`). */
  readStdin: () => Promise<string>;
  env: Record<string, string | undefined>;
  /** Aborts on Ctrl-C: waits and follows stop, the job keeps running. */
  signal: AbortSignal;
};

/** True when progress lines may be drawn: stdout is a terminal and so is stderr, where they go. */
export function interactive(io: Io): boolean {
  return Boolean(io.stdout.isTTY && io.stderr.isTTY);
}
