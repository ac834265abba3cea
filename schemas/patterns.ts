/**
 * Strict patterns for every user string that can reach a batch script or a Slurm command line.
 *
 * The rule (DESIGN invariant 4): a value either matches one of these allow-list patterns, or it is
 * passed to the job through a data file read by a fixed wrapper and never interpolated into shell.
 * Free-form text (argv items, env values, script bodies) only has to be free of NUL; the agent
 * quotes it. The gateway and the agent apply the same schemas (validate twice).
 */
import { z } from "@hono/zod-openapi";

/** Slurm object names: partitions, accounts, QOS, GRES types, profiles. No shell metacharacters. */
export const SLURM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Job names: shown in squeue; letters, digits, `.`, `_`, `-`. */
export const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Cluster names as registered by an admin. */
export const CLUSTER_NAME = /^[a-z][a-z0-9-]{0,31}$/;
/** User names; also a directory name on the shared filesystem, so POSIX-portable. */
export const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Environment variable names. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Label keys. */
export const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
/** Slurm array index expressions: `0-99`, `0-99:2`, `1,3,5-7`. */
export const ARRAY_INDEXES = /^\d{1,7}(-\d{1,7}(:\d{1,7})?)?(,\d{1,7}(-\d{1,7}(:\d{1,7})?)?){0,63}$/;
/** Memory sizes as Slurm understands them: a number with an optional K/M/G/T suffix (default M). */
export const MEMORY = /^[1-9]\d{0,8}[KMGT]?$/;
/**
 * Durations: Slurm forms (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`) or compact forms
 * (`90m`, `1h30m`, `2d`, `45s`).
 */
export const DURATION =
  /^(\d{1,6}|\d{1,6}:\d{1,2}|\d{1,6}:\d{1,2}:\d{1,2}|\d{1,4}-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|(\d{1,6}d)?(\d{1,6}h)?(\d{1,6}m)?(\d{1,6}s)?)$/;
/**
 * Relative paths under a cluster's shared root: segments of safe characters, no `.`/`..`
 * segments, no leading slash. Symlink escapes are checked by the agent with realpath.
 */
export const RELATIVE_PATH = /^(?!.*(^|\/)\.{1,2}(\/|$))[A-Za-z0-9_.+-]+(\/[A-Za-z0-9_.+-]+)*$/;
/** Absolute paths (container bind targets, images on a shared filesystem). */
export const ABSOLUTE_PATH = /^(?!.*\/\.{1,2}(\/|$))\/[A-Za-z0-9_.+-]*(\/[A-Za-z0-9_.+-]+)*$/;
/** Container image references: an absolute `.sif` path or a `docker://`/`oras://`/`library://` URI. */
export const IMAGE_REF = /^(\/[A-Za-z0-9_.+/-]+|(docker|oras|library|shub):\/\/[A-Za-z0-9_.:@/+-]+)$/;
/** Extra sbatch arguments: `--option` or `--option=value` with a safe value. */
export const SBATCH_ARG = /^--[a-z][a-z-]{1,40}(=[A-Za-z0-9_.,:@%+/=-]{1,200})?$/;

/** Environment names the platform owns: a job may not set them. */
export const RESERVED_ENV =
  /^(SLURM_|SLURMGATE_|LD_PRELOAD$|LD_LIBRARY_PATH$|LD_AUDIT$|BASH_ENV$|ENV$|PATH$|HOME$|USER$|IFS$|PS4$)/;

/** Any text that will be quoted by the agent: printable, single line, no NUL. */
export const quotedText = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !/[\0\r\n]/.test(s), "must not contain NUL, CR or LF");

/** Parses a DURATION into whole seconds. Returns undefined for strings that do not match. */
export function durationSeconds(value: string): number | undefined {
  if (!DURATION.test(value) || value === "") {
    return undefined;
  }
  const compact = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value);
  if (compact && /[dhms]$/.test(value)) {
    const [, d = "0", h = "0", m = "0", s = "0"] = compact;
    return ((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60 + Number(s);
  }
  const dayMatch = /^(\d+)-(.*)$/.exec(value);
  if (dayMatch) {
    const [, days = "0", rest = ""] = dayMatch;
    const [h = "0", m = "0", s = "0"] = rest.split(":");
    return ((Number(days) * 24 + Number(h)) * 60 + Number(m)) * 60 + Number(s);
  }
  const parts = value.split(":").map(Number);
  if (parts.length === 1) {
    return (parts[0] ?? 0) * 60;
  }
  if (parts.length === 2) {
    return (parts[0] ?? 0) * 60 + (parts[1] ?? 0);
  }
  return ((parts[0] ?? 0) * 60 + (parts[1] ?? 0)) * 60 + (parts[2] ?? 0);
}

/** Parses a MEMORY string into mebibytes (Slurm's unit when no suffix is given). */
export function memoryMegabytes(value: string): number | undefined {
  const match = /^(\d+)([KMGT]?)$/.exec(value);
  if (!match) {
    return undefined;
  }
  const amount = Number(match[1]);
  const factor = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024, "": 1 }[match[2] ?? ""] ?? 1;
  return Math.ceil(amount * factor);
}
