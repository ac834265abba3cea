/**
 * The one result shape of every Slurm command the agent runs, as `ApiResult` is for the gateway:
 * a value, or a code the caller branches on, whether asking again later may help, and a sentence.
 * A command never throws: an executor that could not run it (an SSH link that dropped, a program
 * that would not start) is `unreachable`, one killed at its deadline is `timeout`.
 */
import type { RejectCode } from "../../schemas/agent.ts";
import { IDENTITY_REJECT_CODES } from "../../schemas/identity.ts";
import type { ExecResult } from "../executor/types.ts";
import { IdentityRefusal } from "../identity/guard.ts";

/** Failures any command can have, before Slurm itself answered. */
export type CommonCode =
  /** The executor could not run the command or lost it midway: it may or may not have run. */
  | "unreachable"
  /** Killed at the command timeout: it may or may not have done its work. */
  | "timeout"
  /** The argv builder refused an argument (a malformed job id, user or path): nothing ran. */
  | "invalid_argument"
  /** In sudo mode, sudo refused to run the command as the job's account: nothing ran. */
  | IdentityCode;

/** The command ran and exited non-zero, saying nothing a caller branches on. */
export type FailedCode = CommonCode | "failed";

/**
 * sbatch: a RejectCode is a permanent refusal of this job; `backpressure` a submit limit or a full
 * controller (give the job back, retry later); `transient`, like `unreachable` and `timeout`, an
 * outcome that is unknown: the job may be queued, so look it up by its tag before any retry.
 */
export type SbatchCode = CommonCode | RejectCode | "backpressure" | "transient";

/** sacct: `unavailable` is accounting that is off or unreachable, never "no such job". */
export type SacctCode = FailedCode | "unavailable";

/** sacctmgr: `unexpected_output` is an answer in a format we do not read: no guess is made. */
export type SacctmgrCode = FailedCode | "unexpected_output";

export type SlurmFailure<C extends string = string> = { ok: false; retryable: boolean; code: C; message: string };
export type SlurmResult<T, C extends string = FailedCode> = { ok: true; value: T } | SlurmFailure<C>;

export function succeeded<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function failed<C extends string>(code: C, message: string, retryable: boolean): SlurmFailure<C> {
  return { ok: false, retryable, code, message };
}

/** sbatch outcomes after which the job may be queued: only a lookup by tag can tell. */
export function isUnknownOutcome(code: SbatchCode): code is "transient" | "unreachable" | "timeout" {
  return code === "transient" || code === "unreachable" || code === "timeout";
}

/** What a throw from the executor means: a sudo refusal (nothing ran, it will refuse again) or a lost command. */
export function thrownFailure(command: string, err: unknown): SlurmFailure<CommonCode> {
  if (err instanceof IdentityRefusal) {
    return failed(identityCode(err.code), err.message, false);
  }
  return failed("unreachable", `${command} did not complete: ${(err as Error)?.message ?? String(err)}`, true);
}

/** A command killed at its deadline. */
export function timedOutFailure(command: string, result: ExecResult): SlurmFailure<"timeout"> {
  const detail = result.stderr.trim().split(/\r?\n/)[0];
  return failed("timeout", `${command} timed out${detail ? `: ${detail}` : ""}`, true);
}

type IdentityCode = (typeof IDENTITY_REJECT_CODES)[number];

function identityCode(code: RejectCode): IdentityCode {
  // The executor throws only identity refusals; anything else would still be a refusal of this job.
  return (IDENTITY_REJECT_CODES as readonly string[]).includes(code) ? (code as IdentityCode) : "sudo_refused";
}
