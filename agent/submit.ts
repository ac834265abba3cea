/**
 * Turning leases into Slurm jobs, exactly once.
 *
 * Order for each lease: re-check the spec and cluster-local policy (validate twice) → prepare the
 * job directory and files → record "submitting" locally → sbatch → record the Slurm job id → report.
 * Whenever the outcome of an earlier attempt is unknown (a re-lease, a "submitting" record left by a
 * crash, an sbatch that timed out), the tag `slurmgate:<job id>:<attempt>` is looked up in squeue and
 * sacct first; the lookup for all such leases of one cycle costs one squeue and one sacct.
 */
import { agentAccount } from "./identity/agent-account.ts";
import { posix } from "node:path";
import type { RejectCode } from "../schemas/agent.ts";
import type { JobSpec } from "../schemas/job.ts";
import { type AgentContext, crashPoint } from "./context.ts";
import type { Executor } from "./executor/types.ts";
import type { Lease, Report } from "./gateway-api.ts";
import { InputRefusal, InputUnreachable, writeInputs } from "./inputs.ts";
import { PathError, checkContainerPaths, createJobDir, jobDirName, resolveWorkdir } from "./paths.ts";
import { IdentityRefusal, type RunAs } from "./identity/guard.ts";
import {
  checkOwnedJobDir,
  checkPersonalJobDir,
  checkUserDirBefore,
  checkSiteJobDir,
  describeRunAs,
  handOver,
  sbatchIdentityArgs,
} from "./identity/hand-over.ts";
import { JOB_FILES } from "./render/data-files.ts";
import { batchTag, slurmgateTag } from "./render/directives.ts";
import { RenderError } from "./render/errors.ts";
import { checkCacheRoot, resolveJobCaches } from "./stage.ts";
import { isUnknownOutcome } from "./slurm/result.ts";
import { parseJobSpec } from "./render/parse-spec.ts";
import { renderBatchScript } from "./render/render-batch-script.ts";
import { SERVICE_SECRETS_FILE, serviceSecretNames } from "./render/services.ts";
import { writeJobSecrets } from "./secrets.ts";
import { adopted, beganSubmitting, submitted } from "./job-life.ts";
import { parseDisplayId } from "./track.ts";
import { type RequeueWaitConfig, requeueReport } from "./requeue-wait.ts";
import { heldByUser, neverFitsCode, neverFitsMessage, tasksAsked } from "./submit-limit.ts";

export class Refusal extends Error {
  readonly code: RejectCode;
  constructor(code: RejectCode, message: string) {
    super(message);
    this.code = code;
  }
}

export type SubmitResult =
  | { kind: "submitted"; report: Report }
  | { kind: "refused"; report: Report }
  | {
      kind: "requeue";
      report: Report /** Slurm takes no job now (a full queue, a submit limit): the reason. */;
      full?: string;
    }
  /** sbatch's outcome is unknown and the tag was not found: keep the lease, retry next cycle. */
  | { kind: "retry"; message: string };

/** A submission whose outcome is unknown: its job tag, and for a sweep element its batch tag and index. */
export type TagLookup = { jobId: string; attempt: number; since: number; batch?: { id: string; index: number } | null };

/**
 * Which of `rows` (squeue or sacct, by display id and comment) are the submissions looked for: a
 * row with the job tag `slurmgate:<job id>:<attempt>` is that job (a plain job or the job's own
 * array); a row with the batch tag `slurmgate:batch:<batch id>` is the element whose index the row
 * names (`123_4`, or a pending range `123_[0-9%3]` that includes it), as `<array job id>_<index>`.
 * Returns jobId → Slurm job id for those found, the first row winning.
 */
export function matchTagged(rows: readonly { id: string; comment: string | null }[], lookups: readonly TagLookup[]) {
  const byJobTag = new Map(lookups.map((l) => [slurmgateTag(l.jobId, l.attempt), l.jobId]));
  const byBatchTag = new Map<string, Map<number, string>>();
  for (const l of lookups) {
    if (l.batch) {
      const tag = batchTag(l.batch.id);
      byBatchTag.set(tag, (byBatchTag.get(tag) ?? new Map()).set(l.batch.index, l.jobId));
    }
  }
  const found = new Map<string, string>();
  for (const row of rows) {
    const parsed = row.comment ? parseDisplayId(row.id) : undefined;
    if (!parsed || !row.comment) {
      continue;
    }
    const jobId = byJobTag.get(row.comment);
    if (jobId && !found.has(jobId)) {
      found.set(jobId, parsed.base);
    }
    const members = byBatchTag.get(row.comment);
    for (const task of members ? (parsed.tasks ?? []) : []) {
      const member = members?.get(task);
      if (member && !found.has(member)) {
        found.set(member, `${parsed.base}_${task}`);
      }
    }
  }
  return found;
}

/**
 * Finds earlier submissions by tag (job tag, and batch tag for sweep elements; see matchTagged).
 * Returns jobId → Slurm job id for those found; `complete` is false when squeue or sacct could not
 * answer, so absence proves nothing. One squeue for all, and one sacct (when accounting is on) when
 * squeue did not show them all.
 */
export async function lookupByTag(ctx: AgentContext, leases: TagLookup[]) {
  const found = new Map<string, string>();
  if (leases.length === 0) {
    return { found, complete: true };
  }
  const rows = await ctx.slurm.squeue();
  for (const [jobId, slurmJobId] of matchTagged(
    (rows.ok ? rows.value : []).map((r) => ({ id: r.slurmJobId, comment: r.comment })),
    leases,
  )) {
    found.set(jobId, slurmJobId);
  }
  let complete = rows.ok;
  if (found.size < leases.length && ctx.accounting) {
    const since = new Date(Math.min(...leases.map((l) => l.since)) - 3_600_000);
    const acct = await ctx.slurm.sacct({ since });
    if (acct.ok) {
      const rest = leases.filter((l) => !found.has(l.jobId));
      for (const [jobId, slurmJobId] of matchTagged(
        acct.value.map((r) => ({ id: r.slurmJobId, comment: r.comment })),
        rest,
      )) {
        found.set(jobId, slurmJobId);
      }
    } else {
      complete = false;
    }
  }
  return { found, complete };
}

/** The lease cannot be judged now (the partition list is unknown): give it back, do not guess. */
export class NotNow extends Error {}

/**
 * The partition must be one this cluster has, by the agent's own sinfo, before sbatch is ever
 * called. The list is refreshed once when it is empty or lacks the name (a partition added since
 * the last inventory); when sinfo cannot say, the lease goes back to the queue.
 */
export async function checkPartition(ctx: AgentContext, spec: JobSpec): Promise<void> {
  const find = () => {
    const name = spec.partition ?? ctx.partitions.find((p) => p.default)?.name;
    return name !== undefined && ctx.partitions.some((p) => p.name === name);
  };
  if (ctx.partitions.length > 0 && find()) {
    return;
  }
  const sinfo = await ctx.slurm.sinfo();
  if (!sinfo.ok) {
    throw new NotNow(`cannot list this cluster's partitions: ${sinfo.message}`);
  }
  ctx.partitions = sinfo.value;
  if (ctx.partitions.length === 0) {
    throw new NotNow("sinfo lists no partitions on this cluster");
  }
  if (!find()) {
    throw new Refusal(
      "slurm_invalid_partition",
      `partition '${spec.partition ?? "(default)"}' does not exist on this cluster; it has ${ctx.partitions.map((p) => p.name).join(", ")}`,
    );
  }
}

/**
 * Where accounting is on, the account a job charges must be one the POSIX user it runs as is
 * associated with (sacctmgr), whatever the gateway's grant allowed: Slurm enforces this only with
 * AccountingStorageEnforce=associations. When sacctmgr cannot say, the lease goes back: no guess.
 */
export async function checkAccount(ctx: AgentContext, spec: JobSpec, runAs: RunAs | null): Promise<void> {
  if (!ctx.accounting || spec.account === undefined) {
    return;
  }
  const sshUser = ctx.config.SLURMGATE_SSH_HOST ? ctx.config.SLURMGATE_SSH_USER : undefined;
  const user = runAs?.name ?? sshUser ?? agentAccount().username;
  const cluster = ctx.config.SLURMGATE_CLUSTER;
  const assoc = await ctx.slurm.accountsOf(user, cluster);
  if (!assoc.ok) {
    throw new NotNow(`cannot check ${user}'s Slurm accounts on ${cluster}: ${assoc.message}`);
  }
  if (!assoc.value.includes(spec.account.toLowerCase())) {
    throw new Refusal(
      "account_not_associated",
      `${user} may not charge account '${spec.account}' on ${cluster}; on offer: ${assoc.value.join(", ") || "none"}`,
    );
  }
}

/**
 * Where a job's files are made and which Slurm commands submit it: the agent's own, or in sudo mode
 * the job account's, so that nothing in a user's directories is created by the service account.
 */
export function actingFor(ctx: AgentContext, owner: string, runAs: RunAs | null) {
  if (!ctx.sudo || !runAs) {
    return { executor: ctx.executor, slurm: ctx.slurm, sudo: false };
  }
  const as = ctx.sudo.as(owner);
  if (!as) {
    throw new IdentityRefusal("owner_not_mapped", `${owner} is not in this site's user mapping`);
  }
  return { ...as, sudo: true };
}

/** The job's staged caches, checked now: one removed since routing refuses the job (cache_missing). */
async function stagedCaches(ctx: AgentContext, executor: Executor, spec: JobSpec) {
  if (!spec.cache?.length) {
    return [];
  }
  const cacheRoot = await checkCacheRoot(executor, ctx.roots.real, ctx.config.SLURMGATE_CACHE_ROOT);
  const found = await resolveJobCaches(executor, cacheRoot, spec.cache);
  if ("missing" in found) {
    throw new Refusal("cache_missing", `cache ${found.missing}: ${found.why}`);
  }
  return found.paths;
}

async function prepare(ctx: AgentContext, lease: Lease) {
  const parsed = parseJobSpec(lease.spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Refusal("invalid_spec", `${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
  }
  const spec = parsed.data;
  await checkPartition(ctx, spec);
  // Whose job this is, before anything is created for it (agent/identity).
  const runAs = ctx.identity ? await ctx.identity.check(lease.owner) : null;
  await checkAccount(ctx, spec, runAs);
  const acting = actingFor(ctx, lease.owner, runAs);
  const executor = acting.executor;
  if (acting.sudo) {
    await checkUserDirBefore(executor, ctx.roots, lease.owner, runAs!.uid);
  }
  const { dir: jobDir, fresh } = await createJobDir(executor, ctx.roots, lease.owner, lease.jobId, lease.attempt);
  const guardAs = acting.sudo ? { executor, uid: runAs!.uid } : null;
  await guardDir(ctx, lease.owner, jobDir, jobDirName(lease.jobId, lease.attempt), guardAs);
  const previousJobDir =
    lease.attempt > 1 ? posix.join(posix.dirname(jobDir), jobDirName(lease.jobId, lease.attempt - 1)) : null;
  const workdir = spec.workdir ? await resolveWorkdir(executor, ctx.roots, spec.workdir) : null;
  await checkContainerPaths(executor, ctx.roots, spec.container);
  const caches = await stagedCaches(ctx, executor, spec);
  if (spec.inputs?.length) {
    await writeInputs(ctx, executor, jobDir, spec.inputs);
  }
  const secrets = await writeJobSecrets(executor, ctx.secrets, jobDir, spec.secrets);
  if (secrets.missing.length) {
    throw new Refusal("secret_missing", `secrets not in this cluster's store: ${secrets.missing.join(", ")}`);
  }
  const names = serviceSecretNames(spec);
  const serviceSecrets = await writeJobSecrets(executor, ctx.secrets, jobDir, names, SERVICE_SECRETS_FILE);
  if (serviceSecrets.missing.length) {
    throw new Refusal("secret_missing", `secrets not in this cluster's store: ${serviceSecrets.missing.join(", ")}`);
  }
  const rendered = renderBatchScript({
    lease: { jobId: lease.jobId, attempt: lease.attempt, spec, dependsOnSlurmIds: lease.dependsOnSlurmIds },
    jobDir,
    previousJobDir,
    workdir,
    secretsFile: secrets.path,
    serviceSecretsFile: serviceSecrets.path,
    apptainerBin: ctx.config.SLURMGATE_APPTAINER,
    allowedSbatchArgs: ctx.config.SLURMGATE_ALLOWED_SBATCH_ARGS,
    caches,
  });
  const scriptPath = `${jobDir}/${JOB_FILES.script}`;
  await writeJobFiles(executor, jobDir, fresh, [
    ...rendered.files,
    { name: JOB_FILES.script, data: rendered.script, mode: 0o700 },
  ]);
  if (runAs && !acting.sudo) {
    await handOver(ctx.executor, jobDir, runAs);
  }
  return { jobDir, scriptPath, rendered, runAs, slurm: acting.slurm, sudo: acting.sudo };
}

/**
 * The job's data files and script. In a directory made just now for this submission (`fresh`),
 * empty optional files are left out (the wrapper reads them missing as empty) and the rest are
 * created new in one call; a plain job gets its argv and its script, two files instead of seven.
 * A directory that existed (a second try of the same attempt) may hold an earlier try's files and
 * exit file: everything is written over it, as before, and the exit file is removed.
 */
async function writeJobFiles(
  executor: Executor,
  jobDir: string,
  fresh: boolean,
  files: { name: string; data: string | Uint8Array; mode: number; optional?: true }[],
) {
  if (fresh) {
    const needed = files.filter((f) => !(f.optional && f.data.length === 0));
    if (executor.writeNewFiles) {
      await executor.writeNewFiles(jobDir, needed);
      return;
    }
    for (const file of needed) {
      await executor.writeFile(`${jobDir}/${file.name}`, file.data, file.mode);
    }
    return;
  }
  for (const file of files) {
    await executor.writeFile(`${jobDir}/${file.name}`, file.data, file.mode);
  }
  // A leftover exit file from an earlier try must not count as this one's evidence.
  await executor.rm(`${jobDir}/exitcode`);
}

/** The identity checks of a directory the agent made for a job (or a sweep batch) named `name` under `<root>/<owner>`. */
export async function guardDir(
  ctx: AgentContext,
  owner: string,
  dir: string,
  name: string,
  sudo: { executor: Executor; uid: number } | null,
) {
  if (sudo) {
    await checkOwnedJobDir(sudo.executor, ctx.roots, owner, dir, name, sudo.uid);
  } else if (ctx.identity?.mode === "site") {
    await checkSiteJobDir(ctx.executor, ctx.roots, owner, dir, name);
  } else if (ctx.identity?.mode === "personal" && !ctx.config.SLURMGATE_SSH_HOST) {
    await checkPersonalJobDir(ctx.executor, ctx.roots, owner, dir, name);
  }
}

export function refusedReport(lease: Lease, code: RejectCode, message: string): Report {
  return { jobId: lease.jobId, epoch: lease.epoch, state: "rejected", code, reason: message, logs: [] };
}

/** A lease whose job directory and files are ready: only sbatch is left. */
export type ReadyLease = { kind: "ready"; lease: Lease; prepared: Awaited<ReturnType<typeof prepare>> };

/**
 * Everything before sbatch: checks, the job directory, its files. Touches no state, so the next
 * lease can be prepared while the sbatch before it runs.
 */
export async function prepareLease(ctx: AgentContext, lease: Lease): Promise<ReadyLease | SubmitResult> {
  try {
    return { kind: "ready", lease, prepared: await prepare(ctx, lease) };
  } catch (err) {
    return failedBefore(ctx, lease, err);
  }
}

/** The result for a lease that failed before sbatch, by what went wrong; anything else is thrown. */
export function failedBefore(ctx: { config: RequeueWaitConfig }, lease: Lease, err: unknown): SubmitResult {
  if (err instanceof NotNow || err instanceof InputUnreachable) {
    return { kind: "requeue", report: requeueReport(lease, err.message, "not-now", ctx.config) };
  }
  if (
    err instanceof Refusal ||
    err instanceof RenderError ||
    err instanceof IdentityRefusal ||
    err instanceof InputRefusal
  ) {
    return { kind: "refused", report: refusedReport(lease, err.code, err.message) };
  }
  if (err instanceof PathError) {
    return { kind: "refused", report: refusedReport(lease, "path_outside_roots", `${err.field}: ${err.message}`) };
  }
  throw err;
}

/** Submits one lease. The caller has already done the tag lookup when one was needed. */
export async function submitLease(ctx: AgentContext, lease: Lease): Promise<SubmitResult> {
  const ready = await prepareLease(ctx, lease);
  return ready.kind === "ready" ? sbatchReady(ctx, ready) : ready;
}

/** "submitting" on disk, sbatch, then the Slurm job id on disk: the exactly-once part. */
export async function sbatchReady(ctx: AgentContext, ready: ReadyLease): Promise<SubmitResult> {
  const { lease, prepared } = ready;
  const { jobDir, scriptPath, rendered, runAs, slurm, sudo } = prepared;
  const record = beganSubmitting(lease, jobDir, ctx.now());
  ctx.state.put(record);
  crashPoint(ctx, "before-sbatch");
  // Through sudo, sbatch already runs as the job's account: --uid/--gid are root's way.
  const args = [...rendered.sbatchArgs, ...sbatchIdentityArgs(sudo ? null : runAs)];
  const outcome = await slurm.sbatch(scriptPath, args, rendered.script);
  crashPoint(ctx, "after-sbatch");
  let slurmJobId: string | null = outcome.ok ? outcome.value.slurmJobId : null;
  if (!outcome.ok && isUnknownOutcome(outcome.code)) {
    // The controller may have queued it before the error: only the tag can tell.
    const lookup = await lookupByTag(ctx, [{ jobId: lease.jobId, attempt: lease.attempt, since: ctx.now() }]);
    slurmJobId = lookup.found.get(lease.jobId) ?? null;
    if (!slurmJobId) {
      return { kind: "retry", message: outcome.message };
    }
  }
  if (!slurmJobId && !outcome.ok) {
    ctx.state.remove(lease.jobId);
    if (outcome.code === "backpressure") {
      // One job, however many array tasks it asks for: it cannot be split.
      const never = neverFitsCode(outcome, await heldByUser(slurm, outcome));
      if (!never) {
        return {
          kind: "requeue",
          report: requeueReport(lease, outcome.message, "no-room", ctx.config),
          full: outcome.message,
        };
      }
      const message = neverFitsMessage(outcome.message, tasksAsked(lease.spec));
      return { kind: "refused", report: { ...refusedReport(lease, never, message), script: rendered.script } };
    }
    if (isUnknownOutcome(outcome.code)) {
      return { kind: "retry", message: outcome.message };
    }
    // sbatch refused the rendered arguments before running: this spec can never be submitted.
    const code = outcome.code === "invalid_argument" ? "invalid_spec" : outcome.code;
    return {
      kind: "refused",
      report: { ...refusedReport(lease, code, outcome.message), script: rendered.script },
    };
  }
  ctx.state.put(submitted(record, slurmJobId!));
  crashPoint(ctx, "before-report");
  return {
    kind: "submitted",
    report: {
      jobId: lease.jobId,
      epoch: lease.epoch,
      state: "submitted",
      slurmJobId: slurmJobId!,
      script: rendered.script,
      reason: ctx.identity
        ? describeRunAs(
            ctx.agentId,
            runAs,
            ctx.config.SLURMGATE_SSH_HOST ? (ctx.config.SLURMGATE_SSH_USER ?? "") : undefined,
          )
        : undefined,
      logs: [],
    },
  };
}

/** A lease for a job that already has a Slurm job (found by tag, or known to the gateway): track it. */
export function adoptLease(ctx: AgentContext, lease: Lease, slurmJobId: string, jobDir: string): Report {
  ctx.state.put(adopted(ctx.state.get(lease.jobId), lease, jobDir, ctx.now(), slurmJobId));
  return {
    jobId: lease.jobId,
    epoch: lease.epoch,
    state: "submitted",
    slurmJobId,
    reason: "found by its tag; not submitted again",
    logs: [],
  };
}
