/**
 * POSIX shell quoting: the only place in the agent that builds shell text from values.
 *
 * Single quotes make every byte literal in POSIX sh and bash; the only character that cannot
 * appear inside them is `'` itself, written as `'\''` (close, escaped quote, reopen). NUL cannot
 * be passed through a shell at all, and CR/LF are refused so that a quoted value can never span
 * lines of a batch script (sbatch scans lines for `#SBATCH` directives).
 */

/** Thrown when a value cannot be quoted safely. */
export class QuoteError extends Error {
  override readonly name = "QuoteError";
}

/**
 * Quotes one argument for a POSIX shell.
 * @example
 * shellQuote("it's $HOME") // => `'it'\''s $HOME'`
 */
export function shellQuote(arg: string): string {
  if (/[\0\r\n]/.test(arg)) {
    throw new QuoteError("cannot quote a value containing NUL, CR or LF");
  }
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

/**
 * Quotes an argv array into one shell command line, each item quoted separately.
 * @example
 * quoteArgs(["squeue", "-o", "%i|%T"]) // => `'squeue' '-o' '%i|%T'`
 */
export function quoteArgs(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}
