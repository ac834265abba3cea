/**
 * `sbatch --test-only`: Slurm's own estimate of when and where a job would start, without queueing
 * it. The answer is on stderr (`sbatch: Job 36598 to start at 2026-11-30T16:17:58 using 1 processors
 * on nodes vm in partition cpu`), in the local time of the process: run it with TZ=UTC so the time
 * needs no guess about the login node's zone.
 */
import type { Estimate } from "../../schemas/asks.ts";
import type { Executor } from "../executor/types.ts";
import { type CommonCode, type SlurmResult, failed, succeeded, thrownFailure, timedOutFailure } from "./result.ts";
import { checkedSbatchOptions } from "./sbatch.ts";

const ESTIMATE_LINE =
  /Job \d+ to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) using (\d+) processors on nodes (\S+) in partition (\S+)/;

/** @example buildTestOnlyArgs(["--partition=cpu"]) // => ["--test-only", "--partition=cpu", "--wrap=true"] */
export function buildTestOnlyArgs(options: readonly string[]): string[] {
  return ["--test-only", ...checkedSbatchOptions(options), "--wrap=true"];
}

/** The estimate in sbatch's stderr (printed as UTC), or null when it gave none. */
export function parseTestOnly(stderr: string): Estimate | null {
  const match = ESTIMATE_LINE.exec(stderr);
  if (!match) {
    return null;
  }
  const [, at = "", processors = "0", nodes = "", partition = ""] = match;
  return { startAt: new Date(`${at}Z`).toISOString(), partition, nodes, processors: Number(processors) };
}

/** Slurm's refusal in its own words: the last line that says what is wrong, without sbatch's prefixes. */
function refusalOf(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.replace(/^sbatch: error: /, "").trim())
    .filter(Boolean);
  return (lines.at(-1) ?? "sbatch gave no estimate").slice(0, 400);
}

export type TestOnlyCode = CommonCode | "refused";

export async function sbatchTestOnly(
  run: { executor: Executor; sbatch: string; env: Record<string, string>; timeoutMs: number },
  options: readonly string[],
): Promise<SlurmResult<Estimate, TestOnlyCode>> {
  let args: string[];
  try {
    args = buildTestOnlyArgs(options);
  } catch (err) {
    return failed("invalid_argument", `sbatch: ${(err as Error).message}`, false);
  }
  try {
    const result = await run.executor.run(run.sbatch, args, {
      env: { ...run.env, TZ: "UTC" },
      timeoutMs: run.timeoutMs,
    });
    if (result.timedOut) {
      return timedOutFailure("sbatch", result);
    }
    const estimate = parseTestOnly(result.stderr);
    return estimate ? succeeded(estimate) : failed("refused", refusalOf(result.stderr), false);
  } catch (err) {
    return thrownFailure("sbatch", err);
  }
}
