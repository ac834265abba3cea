/**
 * The environment Slurm commands run with.
 *
 * sbatch reads SBATCH_* variables (they beat `#SBATCH` lines), squeue reads SQUEUE_FORMAT, sacct
 * reads SACCT_FORMAT, and with `--export` anything else would leak into the job; so every Slurm
 * command gets a small, explicit environment instead of the agent's own (which holds its token).
 */

/** Variables passed through from the agent's environment when present. */
const PASS_THROUGH = ["PATH", "HOME", "USER", "LOGNAME", "SLURM_CONF", "SLURM_CLUSTERS"] as const;

/**
 * Builds the environment for Slurm commands from a source environment.
 * @example
 * buildSlurmEnv(process.env) // => { PATH: "/usr/bin:/bin", SLURM_CONF: "/etc/slurm/slurm.conf", LC_ALL: "C", TZ: "UTC" }
 */
export function buildSlurmEnv(
  source: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const env: Record<string, string> = { PATH: "/usr/local/bin:/usr/bin:/bin" };
  for (const name of PASS_THROUGH) {
    const value = source[name];
    if (value !== undefined && value !== "") {
      env[name] = value;
    }
  }
  // Parsers below expect untranslated messages and C-locale dates and numbers.
  env.LC_ALL = "C";
  // Times printed by squeue/sacct and `--starttime` given to sacct are then all UTC.
  env.TZ = "UTC";
  return { ...env, ...extra };
}
