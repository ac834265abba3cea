/**
 * `sacctmgr show assoc`: the Slurm accounts a POSIX user may charge on one cluster, so a job naming
 * another is refused before sbatch (Slurm itself only enforces this with AccountingStorageEnforce).
 */
import { SLURM_NAME, USER_NAME } from "../../schemas/patterns.ts";
import { type SacctmgrCode, type SlurmResult, failed, succeeded } from "./result.ts";

/** POSIX names are looser than slurmgate's (capitals, dots); no shell or option characters. */
const POSIX_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;

/**
 * argv for listing `user`'s accounts on `cluster`, one per line.
 * @example
 * buildSacctmgrAssocArgs("alice", "alpha")
 * // => ["-n", "-P", "show", "assoc", "user=alice", "cluster=alpha", "format=account"]
 */
export function buildSacctmgrAssocArgs(user: string, cluster: string): string[] {
  if (!POSIX_NAME.test(user) && !USER_NAME.test(user)) {
    throw new Error(`sacctmgr: not a user name: ${JSON.stringify(user)}`);
  }
  if (!SLURM_NAME.test(cluster)) {
    throw new Error(`sacctmgr: not a cluster name: ${JSON.stringify(cluster)}`);
  }
  return ["-n", "-P", "show", "assoc", `user=${user}`, `cluster=${cluster}`, "format=account"];
}

/** The accounts, lower-cased and sorted. */
export type AssocResult = SlurmResult<string[], SacctmgrCode>;

/**
 * The distinct accounts in sacctmgr's answer, lower-cased as slurmdbd stores them. A user with
 * partition-level associations appears once per partition; an unknown user is an empty answer.
 * @example
 * parseSacctmgrAssoc({ code: 0, stdout: "default\nlab-a\ndefault\n", stderr: "" })
 * // => { ok: true, value: ["default", "lab-a"] }
 */
export function parseSacctmgrAssoc(result: { code: number | null; stdout: string; stderr: string }): AssocResult {
  if (result.code !== 0) {
    return failed("failed", `sacctmgr failed: ${result.stderr.trim() || `exit ${result.code}`}`, true);
  }
  const accounts = new Set<string>();
  for (const raw of result.stdout.split(/\r?\n/)) {
    const line = raw.trim().replace(/\|$/, "");
    if (line === "") {
      continue;
    }
    if (!SLURM_NAME.test(line)) {
      // Not what format=account prints: a warning or a changed format. Do not guess.
      return failed(
        "unexpected_output",
        `sacctmgr printed an unexpected line: ${JSON.stringify(line.slice(0, 100))}`,
        false,
      );
    }
    accounts.add(line.toLowerCase());
  }
  return succeeded([...accounts].sort());
}
