/**
 * The sbatch options users may and may not pass through `extraSbatchArgs`, and how the admin's and
 * the agent's allow-lists combine. One list, read by the job schema, the cluster config, the
 * agent's config, the gateway's routing and the agent's renderer.
 */
import { z } from "@hono/zod-openapi";
import { SBATCH_ARG } from "./patterns.ts";

/** An option name as allow-lists hold it: `--constraint`. */
export const SBATCH_OPTION = /^--[a-z][a-z-]{1,40}$/;

/**
 * Options slurmgate sets itself (the `#SBATCH` block of agent/render/directives.ts) or that would
 * subvert what it sets: who the job runs as, what it runs, where its files go, its environment,
 * its tag, its retries and its resources (which routing checked). Never accepted from users,
 * whatever an allow-list says.
 */
export const SLURMGATE_OWNED_SBATCH_OPTIONS = [
  // Identity and the exactly-once tag.
  "--job-name",
  "--comment",
  "--uid",
  "--gid",
  // What runs, and with which environment.
  "--wrap",
  "--export",
  "--export-file",
  "--get-user-env",
  "--container",
  "--container-id",
  "--propagate",
  // Where it runs and writes.
  "--chdir",
  "--workdir",
  "--output",
  "--error",
  "--input",
  "--open-mode",
  // Its life: retries are new attempts, not Slurm requeues; a held job would never start; the
  // signal before the time limit is the spec's `checkpoint`.
  "--requeue",
  "--no-requeue",
  "--hold",
  "--array",
  "--dependency",
  "--kill-on-invalid-dep",
  "--signal",
  // The submission itself.
  "--parsable",
  "--test-only",
  "--wait",
  "--batch",
  // What routing checked against the partition's limits.
  "--partition",
  "--account",
  "--qos",
  "--nodes",
  "--ntasks-per-node",
  "--cpus-per-task",
  "--mem",
  "--mem-per-cpu",
  "--mem-per-gpu",
  "--gres",
  "--gpus",
  "--gpus-per-node",
  "--gpus-per-task",
  "--gpus-per-socket",
  "--time",
] as const;

/**
 * sbatch options of their own that happen to be a prefix of an owned one: sbatch reads an exact
 * name as itself, never as an abbreviation (checked against sbatch 22.05's --help and man page).
 */
const FULL_OPTIONS_PREFIXING_OWNED: ReadonlySet<string> = new Set(["--ntasks"]);

/** The option name of `--option=value` (or of `--option`). */
export function sbatchOptionName(arg: string): string {
  return arg.split("=", 1)[0] ?? "";
}

/**
 * True when sbatch would read `name` as an option slurmgate owns: the option itself or an
 * abbreviation of one (sbatch, like getopt_long, accepts any unambiguous prefix: `--hol` is `--hold`).
 * @example isSlurmgateOwned("--hold") // => true
 * @example isSlurmgateOwned("--commen") // => true
 * @example isSlurmgateOwned("--constraint") // => false
 * @example isSlurmgateOwned("--ntasks") // => false (an option of its own, not --ntasks-per-node abbreviated)
 */
export function isSlurmgateOwned(name: string): boolean {
  if ((SLURMGATE_OWNED_SBATCH_OPTIONS as readonly string[]).includes(name)) {
    return true;
  }
  return !FULL_OPTIONS_PREFIXING_OWNED.has(name) && SLURMGATE_OWNED_SBATCH_OPTIONS.some((o) => o.startsWith(name));
}

/** Why an option is refused whatever an allow-list says; undefined when it is not owned. */
export function ownedReason(name: string): string | undefined {
  if (!isSlurmgateOwned(name)) {
    return undefined;
  }
  const full = SLURMGATE_OWNED_SBATCH_OPTIONS.filter((owned) => owned.startsWith(name));
  return full.includes(name as (typeof full)[number])
    ? `${name} is set by slurmgate itself`
    : `${name} abbreviates ${full.join(" or ")}, which slurmgate sets itself`;
}

/** One `extraSbatchArgs` item: a safe `--option[=value]` whose option slurmgate does not own. */
export const ExtraSbatchArg = z
  .string()
  .regex(SBATCH_ARG, "--option or --option=value with a safe value")
  .superRefine((arg, ctx) => {
    const reason = ownedReason(sbatchOptionName(arg));
    if (reason) {
      ctx.addIssue({ code: "custom", message: reason });
    }
  });

/** One allow-list entry: an option name slurmgate does not own. */
export const AllowedSbatchOption = z
  .string()
  .regex(SBATCH_OPTION, "an option name like --constraint")
  .superRefine((name, ctx) => {
    const reason = ownedReason(name);
    if (reason) {
      ctx.addIssue({ code: "custom", message: `${reason}; it cannot be allow-listed` });
    }
  });

/**
 * The options users may pass on a cluster: the admin's list, narrowed to the agent's when the
 * agent publishes one (the agent refuses anything not on its own list, so offering more would only
 * defer the refusal).
 * @example effectiveAllowList(["--constraint", "--exclusive"], ["--constraint"]) // => ["--constraint"]
 */
export function effectiveAllowList(admin: readonly string[], agent: readonly string[] | undefined): string[] {
  // Stored configs predate the owned-options rule: filter here too, so an old row cannot offer one.
  return admin.filter((name) => !isSlurmgateOwned(name) && (agent === undefined || agent.includes(name)));
}
