/**
 * Exit codes and the one-line error message every failure becomes.
 */
import {
  MalformedResponseError,
  NetworkError,
  SlurmgateError,
  WaitTimeoutError,
  isAbortError,
} from "../client/index.ts";

/** What `slurmgate` exits with; documented in `slurmgate --help`. */
export const EXIT = {
  ok: 0,
  /** API refusal, network failure, bad configuration. */
  error: 1,
  /** Bad arguments. */
  usage: 2,
  /** The job ended in a state other than the one asked for (failed, cancelled, timeout, …). */
  jobFailed: 3,
  /** `--timeout` ran out while waiting. */
  timeout: 4,
  /** Ctrl-C while waiting; the job keeps running. */
  interrupted: 130,
} as const;

/** Bad command-line arguments: exit 2 with a pointer to `--help`. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly verb: string | undefined;
  constructor(message: string, verb?: string) {
    super(message);
    this.verb = verb;
  }
}

/** A failure with a message meant for people as is (config missing, file unreadable): exit 1. */
export class CliError extends Error {
  override readonly name = "CliError";
}

/** Ctrl-C (exit 130) with words of its own, where "the job keeps running" is not what happened. */
export class Interrupted extends Error {
  override readonly name = "AbortError";
}

/** Maps an error to its exit code. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) {
    return EXIT.usage;
  }
  if (err instanceof WaitTimeoutError) {
    return EXIT.timeout;
  }
  if (isAbortError(err)) {
    return EXIT.interrupted;
  }
  return EXIT.error;
}

/** One line of text from the gateway: no line breaks, no terminal control characters. */
const oneLine = (text: string) =>
  text
    .replace(/\s*\n\s*/g, "; ")
    .replace(/\t/g, " ")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");

/**
 * One readable line: `resources.time: a Slurm time … (422 validation_failed)`. A refusal with
 * several faults gets a summary line, then one indented line per fault:
 * ```
 * 3 problems in the request (422 validation_failed):
 *   unknown field walltime; did you mean resources.time?
 *   resources.cpusPerTask: Invalid input: expected number, received string
 * ```
 */
export function formatError(err: unknown): string {
  let line: string;
  if (err instanceof SlurmgateError && err.errors.length > 1) {
    const faults = err.errors.map((e) => {
      const field = e.field.replace(/^body\./, "");
      return `  ${oneLine(e.message.startsWith("unknown ") ? e.message : `${field}: ${e.message}`)}`;
    });
    // The gateway lists at most 100 faults; its detail says how many there were.
    const total = Math.max(Number(/^(\d+) problems/.exec(err.detail)?.[1] ?? 0), err.errors.length);
    const more = total > faults.length ? [`  … and ${total - faults.length} more`] : [];
    return [`${total} problems in the request (${err.status} ${err.code}):`, ...faults, ...more].join("\n");
  }
  if (err instanceof SlurmgateError) {
    const detail = err.detail.replace(/^body\./, "");
    const field = err.field?.replace(/^body\./, "");
    const withField = field && !detail.includes(field) ? `${field}: ${detail}` : detail;
    line = `${withField} (${err.status} ${err.code})`;
  } else if (err instanceof UsageError) {
    line = `${err.message} (see: slurmgate ${err.verb ? `${err.verb} ` : ""}--help)`;
  } else if (isAbortError(err)) {
    line = err instanceof Interrupted ? err.message : "interrupted (the job keeps running)";
  } else if (
    err instanceof NetworkError ||
    err instanceof MalformedResponseError ||
    err instanceof WaitTimeoutError ||
    err instanceof Error
  ) {
    line = err.message;
  } else {
    line = String(err);
  }
  return oneLine(line);
}

/** What kind of failure an error is, for `--json` readers: one word per exit cause. */
function kindOf(err: unknown): string {
  if (err instanceof SlurmgateError) {
    return "api";
  }
  if (err instanceof UsageError) {
    return "usage";
  }
  if (err instanceof WaitTimeoutError) {
    return "timeout";
  }
  if (isAbortError(err)) {
    return "interrupted";
  }
  if (err instanceof NetworkError) {
    return "network";
  }
  if (err instanceof MalformedResponseError) {
    return "malformed_response";
  }
  return "error";
}

/**
 * With `--json`, every failure is this one object on stderr (stdout keeps the data of a success):
 * `{"error":{"kind":"api","message":…,"exit":1,"status":422,"code":"validation_failed","field":…}}`.
 * `message` is the same line the text form prints; API problems carry their fields as sent.
 */
export function errorJson(err: unknown): { error: Record<string, unknown> } {
  const error: Record<string, unknown> = { kind: kindOf(err), message: formatError(err), exit: exitCodeOf(err) };
  if (err instanceof SlurmgateError) {
    const { status, code, field, errors, requestId } = err.problem;
    Object.assign(error, { status, code, detail: err.detail });
    if (field !== undefined) {
      error.field = field;
    }
    if (errors !== undefined) {
      error.errors = errors;
    }
    if (requestId !== undefined) {
      error.requestId = requestId;
    }
  } else if (err instanceof MalformedResponseError) {
    error.status = err.status;
  } else if (err instanceof NetworkError) {
    error.url = err.url;
  } else if (err instanceof WaitTimeoutError) {
    error.job = err.job;
  }
  return { error };
}
