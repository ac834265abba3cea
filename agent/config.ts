/**
 * Agent configuration: environment variables, optionally loaded from a config file of
 * `NAME=value` lines (the environment wins). Parsed by a function, never at import.
 */
import { z } from "zod";
import { AllowedSbatchOption } from "../schemas/sbatch.ts";
import { SPAWNER_CHOICES } from "./executor/spawner-programs.ts";
import { NO_ROOM_WAIT_SECONDS } from "./requeue-wait.ts";
import { parseRestTarget } from "./slurm-rest/client.ts";

const seconds = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);
const list = (separator: string) =>
  z.string().transform((s) =>
    s
      .split(separator)
      .map((x) => x.trim())
      .filter(Boolean),
  );

export const AgentConfig = z.object({
  SLURMGATE_URL: z.url({ message: "the gateway's base URL, e.g. https://slurmgate.example.org" }), // where the gateway is
  SLURMGATE_AGENT_TOKEN: z
    .string()
    .regex(/^sga_[A-Za-z0-9_-]{32,}$/, "an agent token (sga_…) from `slurmgate token create --cluster <name>`"), // bound to one cluster
  SLURMGATE_CLUSTER: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "the cluster name the token is bound to"), // checked against the token at start
  SLURMGATE_SHARED_ROOTS: list(":").pipe(
    z.array(z.string().regex(/^\//, "absolute paths separated by ':'")).min(1, "at least one absolute path"),
  ), // job dirs live under the first; binds and workdirs must resolve inside one of them; published in the inventory
  SLURMGATE_CACHE_ROOT: z
    .string()
    .regex(/^\/[^\0]*$/, "an absolute path under one of SLURMGATE_SHARED_ROOTS")
    .optional(), // where `slurmgate agent stage` places models and images; must resolve inside a shared root (checked at start)
  SLURMGATE_AGENT_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.:@-]{1,128}$/)
    .optional(), // default <hostname>:<pid>:<random>
  SLURMGATE_STATE_FILE: z.string().optional(), // default $XDG_STATE_HOME/slurmgate/agent-<cluster>.json
  SLURM_CONF: z.string().optional(), // passed to every Slurm command
  SLURMGATE_SLURM_BIN: z.string().default(""), // directory holding sbatch/squeue/…; empty = PATH
  SLURMGATE_APPTAINER: z.string().default("apptainer"), // apptainer or singularity program for container jobs
  SLURMGATE_SECRETS_FILE: z.string().optional(), // NAME=value lines, mode 0600; secrets never leave the cluster
  SLURMGATE_ALLOWED_SBATCH_ARGS: list(",").pipe(z.array(AllowedSbatchOption).max(64)).default([]), // agent-side allow-list for extraSbatchArgs, e.g. --constraint,--exclusive; published in the inventory
  SLURMGATE_POLL_WAIT_SECONDS: seconds(20, 0, 25), // long-poll hold when idle
  SLURMGATE_TRACK_MIN_SECONDS: seconds(2, 1, 600), // first status check after a submission
  SLURMGATE_TRACK_MAX_SECONDS: seconds(60, 1, 240), // slowest status check; keep well under MinJobAge (300 s default)
  SLURMGATE_INVENTORY_SECONDS: seconds(300, 10, 86_400), // how often to re-publish sinfo
  SLURMGATE_LOST_GRACE_SECONDS: seconds(600, 30, 86_400), // absent from squeue, sacct and exit file this long = lost
  SLURMGATE_SUBMITS_PER_SECOND: z.coerce.number().min(0.1).max(1_000).default(5), // gentle on a shared slurmctld
  SLURMGATE_SUBMIT_CONCURRENCY: seconds(1, 1, 16), // sbatch calls in flight at once; the rate limit above still applies
  SLURMGATE_SPAWNER: z.enum(SPAWNER_CHOICES).default("auto"), // what starts local commands: python (/usr/bin/python3's posix_spawn), bash, or auto (python where it can)
  SLURMGATE_MAX_LEASE: seconds(10, 1, 100), // jobs leased per call
  SLURMGATE_NO_ROOM_WAIT_SECONDS: seconds(NO_ROOM_WAIT_SECONDS, 5, 3_600), // a job Slurm had no room for (a full queue, a submit limit, a sweep's maxParallel taken) waits this long in the gateway's queue before it is offered again
  SLURMGATE_LOG_BYTES_PER_JOB: seconds(262_144, 1_024, 1_048_576), // log bytes shipped per job per cycle
  SLURMGATE_LOG_BYTES_PER_CYCLE: seconds(2_097_152, 4_096, 16_777_216), // log bytes shipped per cycle in total
  SLURMGATE_COMMAND_TIMEOUT_SECONDS: seconds(60, 5, 600), // a Slurm command that takes longer is killed and treated as ambiguous
  SLURMGATE_SLURMRESTD: z
    .string()
    .superRefine((value, ctx) => {
      try {
        parseRestTarget(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    })
    .optional(), // set = submit, list and cancel through slurmrestd (unix:/path.sock or http://host:port) instead of sbatch/squeue/scancel
  SLURMGATE_SLURMRESTD_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, "a POSIX user name")
    .optional(), // the user slurmrestd acts as (local auth: the daemon's own; JWT: the token's); default the agent's user
  SLURMGATE_SLURMRESTD_TOKEN_FILE: z.string().regex(/^\//, "an absolute path").optional(), // set = rest_auth/jwt: the token (from `scontrol token`), re-read when it changes
  SLURMGATE_SSH_HOST: z.string().optional(), // set = drive the login node over SSH instead of locally
  SLURMGATE_SSH_PORT: seconds(22, 1, 65_535),
  SLURMGATE_SSH_USER: z.string().optional(),
  SLURMGATE_SSH_KEY: z.string().optional(), // private key file
  SLURMGATE_SSH_HOST_KEY: z.string().optional(), // pinned host key: SHA256:… fingerprint
  SLURMGATE_USER_MAP: z.string().optional(), // set = a site agent: JSON mapping slurmgate users to POSIX accounts (docs/agent-at-sites.md)
  SLURMGATE_RUN_AS: z.enum(["root", "sudo"]).optional(), // a site agent's way to act as its users: root (default) or sudo (a service account with a sudoers rule)
  SLURMGATE_AGENT_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
    .optional(), // a personal agent's slurmgate user, pinned instead of learnt from the gateway
  SLURMGATE_OWNER_IS_POSIX_USER: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"), // true = also refuse jobs whose owner is not the name of the account the agent runs as
  SLURMGATE_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/** Reads `NAME=value` lines; `#` comments and blank lines are ignored. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) {
      continue;
    }
    const eq = line.indexOf("=");
    if (eq > 0) {
      out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
  }
  return out;
}

/**
 * @returns the config, or throws an Error with one line per bad variable (never echoing tokens).
 * @example parseAgentConfig({ SLURMGATE_URL: "http://localhost:8080", ... })
 */
export function parseAgentConfig(source: Record<string, string | undefined>): AgentConfig {
  const result = AgentConfig.safeParse(source);
  if (result.success) {
    return result.data;
  }
  throw new Error(
    result.error.issues
      .map((issue) => {
        // A list's issue has the item index in its path; the variable is the first segment.
        const name = String(issue.path[0] ?? "config");
        const shown =
          name.includes("TOKEN") || source[name] === undefined ? "" : ` (got ${JSON.stringify(source[name])})`;
        return `invalid ${name}: ${source[name] === undefined ? "required" : issue.message}${shown}`;
      })
      .join("\n"),
  );
}
