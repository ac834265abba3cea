/**
 * Version strings of Slurm and the container runtime, for the inventory.
 */

/**
 * Parses `sbatch --version` / `scontrol --version`: `slurm 22.05.8`, Debian's `slurm-wlm 22.05.8`,
 * `slurm 23.11.4-1`. Returns the version or null.
 * @example
 * parseSlurmVersion("slurm-wlm 22.05.8\n") // => "22.05.8"
 */
export function parseSlurmVersion(stdout: string): string | null {
  const m = /^slurm(?:-wlm)?\s+(\d+\.\d+\.\d+[\w.+-]*)/im.exec(stdout.trim());
  return m?.[1] ?? null;
}

/**
 * Parses `apptainer --version` / `singularity --version`: `apptainer version 1.3.4`,
 * `singularity-ce version 4.1.0`, `singularity version 3.8.7-1.el8`.
 * @example
 * parseApptainerVersion("apptainer version 1.3.4\n") // => { runtime: "apptainer", version: "1.3.4" }
 */
export function parseApptainerVersion(stdout: string): { runtime: string; version: string } | null {
  const m = /^(apptainer|singularity(?:-ce|-pro)?)\s+version\s+(\S+)/im.exec(stdout.trim());
  return m?.[1] && m[2] ? { runtime: m[1], version: m[2] } : null;
}
