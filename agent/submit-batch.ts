/**
 * Sweep batches: the leases of one lease response that share a `batch.id` become ONE
 * `sbatch --array=<their indexes>[%maxParallel]` tagged `slurmgate:batch:<batch id>`; element `i`
 * is array task `i`, Slurm id `<array job id>_<i>`, and from then on a plain job to every other
 * part of the agent (tracked, cancelled, its logs and result shipped from its own job directory).
 *
 * The gateway's grouping is not trusted: the agent re-checks that the members can share one array
 * (same owner, equal specs but for name/env/command/labels, a command, no array or dependency,
 * distinct indexes below this cluster's MaxArraySize) and submits them one by one otherwise.
 *
 * Exactly-once as for plain jobs: every member is recorded "submitting" (one journal append) before
 * sbatch, and `<array>_<index>` right after it; an unknown outcome is resolved by looking up the
 * batch tag (the array must contain the member's index) and the member's own job tag.
 *
 * An array refused for a submit limit is split (see nextPartSize): its parts are disjoint prefixes,
 * each recorded as soon as it is in, and what does not fit goes back to wait with Slurm's reason.
 */
import { posix } from "node:path";
import { LeaseBatch, type RejectCode } from "../schemas/agent.ts";
import type { JobSpec } from "../schemas/job.ts";
import { isTerminal } from "../schemas/job.ts";
import { DEFAULT_MAX_ARRAY_SIZE, PER_ELEMENT_FIELDS } from "../schemas/sweep.ts";
import { crashPoint, type AgentContext } from "./context.ts";
import type { Lease, Report } from "./gateway-api.ts";
import type { RunAs } from "./identity/guard.ts";
import { checkUserDirBefore, describeRunAs, handOver, sbatchIdentityArgs } from "./identity/hand-over.ts";
import { writeInputs } from "./inputs.ts";
import { checkContainerPaths, jobDirName, prepareBatchDir, prepareJobDir, resolveWorkdir } from "./paths.ts";
import { JOB_FILES } from "./render/data-files.ts";
import { checkedJobSpec, parseJobSpec } from "./render/parse-spec.ts";
import { renderArrayElement, renderArrayScript } from "./render/render-batch-array.ts";
import { writeJobSecrets } from "./secrets.ts";
import { requeueReport } from "./requeue-wait.ts";
import { heldByUser, neverFitsCode, neverFitsMessage, nextPartSize } from "./submit-limit.ts";
import { isUnknownOutcome } from "./slurm/result.ts";
import {
  failedBefore,
  Refusal,
  type SubmitResult,
  actingFor,
  checkAccount,
  checkPartition,
  guardDir,
  lookupByTag,
  refusedReport,
} from "./submit.ts";
import { beganSubmitting, submitted } from "./job-life.ts";

/** What one sbatch call submits: a sweep batch as one array, or one lease on its own. */
export type Submission = { kind: "batch"; leases: Lease[] } | { kind: "single"; lease: Lease };

/** The spec without the fields elements may differ in, as canonical JSON (keys sorted at every level). */
export function commonPart(spec: JobSpec): string {
  const rest: Record<string, unknown> = { ...spec };
  for (const field of PER_ELEMENT_FIELDS) {
    delete rest[field];
  }
  const canonical = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(canonical)
      : value !== null && typeof value === "object"
        ? Object.fromEntries(
            Object.keys(value)
              .sort()
              .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
          )
        : value;
  return JSON.stringify(canonical(rest));
}

/** Why these leases cannot be one array (null: they can). */
export function batchProblem(leases: readonly Lease[], maxArraySize: number): string | null {
  const first = leases[0];
  if (!first?.batch) {
    return "not a batch";
  }
  // The lease is the gateway's JSON, not re-parsed: a malformed batch is not one array's worth.
  if (!LeaseBatch.shape.id.safeParse(first.batch.id).success) {
    return `batch id ${JSON.stringify(first.batch.id)} is not one`;
  }
  const max = first.batch.maxParallel;
  if (max !== null && !(Number.isSafeInteger(max) && max >= 1 && max <= 100_000)) {
    return `maxParallel ${JSON.stringify(max)} is not a throttle`;
  }
  const indexes = new Set<number>();
  let common: string | undefined;
  for (const lease of leases) {
    const parsed = parseJobSpec(lease.spec);
    if (!parsed.success) {
      return `${lease.jobId}: invalid spec`;
    }
    const spec = parsed.data;
    const batch = lease.batch;
    if (!batch || batch.id !== first.batch.id || batch.maxParallel !== first.batch.maxParallel) {
      return `${lease.jobId}: another batch or throttle`;
    }
    if (!Number.isSafeInteger(batch.index) || batch.index < 0 || batch.index >= maxArraySize) {
      return `${lease.jobId}: index ${batch.index} is not below this cluster's MaxArraySize ${maxArraySize}`;
    }
    if (indexes.has(batch.index)) {
      return `${lease.jobId}: index ${batch.index} given twice`;
    }
    indexes.add(batch.index);
    if (lease.owner !== first.owner) {
      return `${lease.jobId}: another owner`;
    }
    if (
      spec.command === undefined ||
      spec.array !== undefined ||
      spec.dependsOn.length > 0 ||
      spec.services?.length ||
      spec.launcher !== undefined
    ) {
      return `${lease.jobId}: not a command without array, dependencies, services or launcher`;
    }
    if (lease.dependsOnSlurmIds.length > 0 || lease.slurmJobId !== null) {
      return `${lease.jobId}: has dependencies or a Slurm job already`;
    }
    const part = commonPart(spec);
    if (common !== undefined && part !== common) {
      return `${lease.jobId}: its spec differs from the others' in more than name, env, command and labels`;
    }
    common = part;
  }
  return null;
}

/**
 * Splits leases to submit into sbatch calls, in lease order: the leases with a batch id become one
 * array per id when {@link batchProblem} finds nothing wrong, the rest go one by one.
 */
export function planSubmissions(ctx: Pick<AgentContext, "log" | "maxArraySize">, leases: Lease[]): Submission[] {
  const groups = new Map<string, Lease[]>();
  for (const lease of leases) {
    if (lease.batch) {
      groups.set(lease.batch.id, [...(groups.get(lease.batch.id) ?? []), lease]);
    }
  }
  const out: Submission[] = [];
  const planned = new Set<string>();
  for (const lease of leases) {
    const group = lease.batch ? groups.get(lease.batch.id) : undefined;
    if (!group || !lease.batch) {
      out.push({ kind: "single", lease });
      continue;
    }
    if (planned.has(lease.batch.id)) {
      continue;
    }
    planned.add(lease.batch.id);
    const problem = batchProblem(group, ctx.maxArraySize ?? DEFAULT_MAX_ARRAY_SIZE);
    if (problem) {
      ctx.log("warn", "sweep batch cannot be one array; submitting its elements one by one", {
        batch: lease.batch.id,
        problem,
      });
      out.push(...group.map((l) => ({ kind: "single" as const, lease: l })));
    } else {
      out.push({ kind: "batch", leases: group });
    }
  }
  return out;
}

type Member = { lease: Lease; index: number; jobDir: string };

/**
 * Submits one sweep batch (leases already checked by {@link planSubmissions}) as one array, or as
 * parts of it when a submit limit refuses the whole (each part's sbatch paced like any other).
 * Returns one result per lease, in lease order; a member whose sbatch outcome is unknown and not
 * found by tag gets `retry` and stays "submitting" in the state, to be looked up again.
 */
export async function submitBatch(
  ctx: AgentContext,
  leases: Lease[],
  /** Waits for the pacer's next slot (SLURMGATE_SUBMITS_PER_SECOND): before every sbatch, each part's too. */
  beforeSubmit: () => Promise<void>,
): Promise<SubmitResult[]> {
  const first = leases[0]!;
  const batch = first.batch!;
  const results = new Map<string, SubmitResult>();
  const resultList = () => leases.map((l) => results.get(l.jobId)!);
  let common: Awaited<ReturnType<typeof prepareCommon>>;
  try {
    common = await prepareCommon(ctx, first);
  } catch (err) {
    return leases.map((l) => failedBefore(ctx, l, err));
  }
  const { spec, runAs, acting, batchDir, workdir } = common;
  const executor = acting.executor;
  const members: Member[] = [];
  for (const lease of leases) {
    try {
      members.push(await prepareMember(ctx, common, lease));
    } catch (err) {
      results.set(lease.jobId, failedBefore(ctx, lease, err));
    }
  }
  if (members.length === 0) {
    return resultList();
  }
  const now = ctx.now();
  const records = new Map(members.map((m) => [m.lease.jobId, beganSubmitting(m.lease, m.jobDir, now)]));
  ctx.state.batch(() => {
    for (const record of records.values()) {
      ctx.state.put(record);
    }
  });
  crashPoint(ctx, "before-sbatch");
  const done = new Map<string, { slurmJobId: string; script: string }>();
  // Parts are prefixes of what is left, so each element is in at most one array of its batch tag.
  let rest = members;
  let size = rest.length;
  while (rest.length > 0) {
    const part = rest.slice(0, size);
    const throttle = partThrottle(ctx, batch);
    if (throttle !== null && throttle < 1) {
      const reason = `the sweep's maxParallel ${batch.maxParallel} is taken by its elements in Slurm: waiting`;
      giveBack(ctx, rest, { report: (l) => requeueReport(l, reason, "no-room", ctx.config) }, results);
      break;
    }
    let rendered: ReturnType<typeof renderArrayScript>;
    try {
      rendered = renderArrayScript({
        batch: { id: batch.id, maxParallel: throttle },
        batchDir,
        spec,
        indexes: part.map((m) => m.index),
        workdir,
        apptainerBin: ctx.config.SLURMGATE_APPTAINER,
        allowedSbatchArgs: ctx.config.SLURMGATE_ALLOWED_SBATCH_ARGS,
      });
      // Slurm keeps its own copy of a submitted script: the next part may write over this one.
      await executor.writeFile(`${batchDir}/${JOB_FILES.script}`, rendered.script, 0o700);
      if (runAs && !acting.sudo) {
        await handOver(ctx.executor, batchDir, runAs);
      }
    } catch (err) {
      giveBack(ctx, rest, { result: (l) => failedBefore(ctx, l, err) }, results);
      break;
    }
    await beforeSubmit();
    const args = [...rendered.sbatchArgs, ...sbatchIdentityArgs(acting.sudo ? null : runAs)];
    const outcome = await acting.slurm.sbatch(`${batchDir}/${JOB_FILES.script}`, args, rendered.script);
    crashPoint(ctx, "after-sbatch");
    const ids = new Map<string, string>();
    if (outcome.ok) {
      for (const m of part) {
        ids.set(m.lease.jobId, `${outcome.value.slurmJobId}_${m.index}`);
      }
    } else if (isUnknownOutcome(outcome.code)) {
      // The controller may have queued the array before the error: only the tags can tell.
      const lookup = await lookupByTag(
        ctx,
        part.map((m) => ({ jobId: m.lease.jobId, attempt: m.lease.attempt, since: now, batch: m.lease.batch })),
      );
      for (const m of part) {
        const found = lookup.found.get(m.lease.jobId);
        if (found) {
          ids.set(m.lease.jobId, found);
        } else {
          results.set(m.lease.jobId, { kind: "retry", message: outcome.message });
        }
      }
    } else {
      const smaller = nextPartSize(part.length, outcome);
      if (smaller !== null) {
        size = smaller;
        continue;
      }
      const held = part.length === 1 && done.size === 0 ? await heldByUser(acting.slurm, outcome) : null;
      const never = neverFitsCode(outcome, held);
      if (outcome.code === "backpressure" && !never) {
        const report = (l: Lease) => requeueReport(l, outcome.message, "no-room", ctx.config);
        giveBack(ctx, rest, { report, full: outcome.message }, results);
      } else {
        const code = never ?? ((outcome.code === "invalid_argument" ? "invalid_spec" : outcome.code) as RejectCode);
        const message = never ? neverFitsMessage(outcome.message, 1) : outcome.message;
        const report = (l: Lease) => ({ ...refusedReport(l, code, message), script: rendered.script });
        giveBack(ctx, rest, { refused: report }, results);
      }
      break;
    }
    ctx.state.batch(() => {
      for (const [jobId, slurmJobId] of ids) {
        ctx.state.put(submitted(records.get(jobId)!, slurmJobId));
        done.set(jobId, { slurmJobId, script: rendered.script });
      }
    });
    rest = rest.slice(part.length);
    if (ids.size < part.length) {
      // Slurm did not answer: ask nothing more of it this cycle. Not one of these was tried.
      const reason = `Slurm did not answer sbatch (${outcome.ok ? "" : outcome.message}); will retry`;
      giveBack(ctx, rest, { report: (l) => requeueReport(l, reason, "not-now", ctx.config) }, results);
      break;
    }
    size = Math.min(size, rest.length);
    if (rest.length > 0) {
      crashPoint(ctx, "between-parts");
    }
  }
  if (done.size > 0) {
    crashPoint(ctx, "before-report");
  }
  for (const [jobId, report] of submittedReports(ctx, members, done, runAs)) {
    results.set(jobId, { kind: "submitted", report });
  }
  return resultList();
}

/**
 * The throttle (`%N`) for an array of a batch: maxParallel less the batch's elements this agent has
 * in Slurm already (an earlier part of a split array, a retried element's siblings). Each element
 * of an earlier array still running was counted here, and the earlier arrays gain none, so all the
 * batch's arrays together never run more than maxParallel. Null: no throttle.
 */
function partThrottle(ctx: AgentContext, batch: { id: string; maxParallel: number | null }): number | null {
  if (batch.maxParallel === null) {
    return null;
  }
  const inSlurm = ctx.state
    .all()
    .filter(
      (j) =>
        j.lease?.batch?.id === batch.id && j.slurmJobId !== null && !(j.reported !== null && isTerminal(j.reported)),
    ).length;
  return batch.maxParallel - inSlurm;
}

type GiveBack =
  | { report: (lease: Lease) => Report; full?: string }
  | { refused: (lease: Lease) => Report }
  | { result: (lease: Lease) => SubmitResult };

/** Members not submitted: forgotten, then given back (for now), refused, or failed before sbatch. */
function giveBack(ctx: AgentContext, members: Member[], how: GiveBack, results: Map<string, SubmitResult>) {
  ctx.state.batch(() => {
    for (const m of members) {
      ctx.state.remove(m.lease.jobId);
    }
  });
  for (const { lease } of members) {
    results.set(
      lease.jobId,
      "result" in how
        ? how.result(lease)
        : "refused" in how
          ? { kind: "refused", report: how.refused(lease) }
          : { kind: "requeue", report: how.report(lease), full: how.full },
    );
  }
}

/** The submitted report of each member that has its `<array>_<index>`. */
function submittedReports(
  ctx: AgentContext,
  members: Member[],
  done: Map<string, { slurmJobId: string; script: string }>,
  runAs: RunAs | null,
): [string, Report][] {
  const reason = ctx.identity
    ? describeRunAs(
        ctx.agentId,
        runAs,
        ctx.config.SLURMGATE_SSH_HOST ? (ctx.config.SLURMGATE_SSH_USER ?? "") : undefined,
      )
    : undefined;
  return members.flatMap((m): [string, Report][] => {
    const got = done.get(m.lease.jobId);
    return got
      ? [
          [
            m.lease.jobId,
            {
              jobId: m.lease.jobId,
              epoch: m.lease.epoch,
              state: "submitted",
              slurmJobId: got.slurmJobId,
              script: got.script,
              reason,
              logs: [],
            },
          ],
        ]
      : [];
  });
}

/** What every member shares: the checks made once per batch, and the batch directory. */
async function prepareCommon(ctx: AgentContext, first: Lease) {
  const spec = checkedJobSpec(first.spec);
  await checkPartition(ctx, spec);
  const runAs = ctx.identity ? await ctx.identity.check(first.owner) : null;
  await checkAccount(ctx, spec, runAs);
  const acting = actingFor(ctx, first.owner, runAs);
  if (acting.sudo) {
    await checkUserDirBefore(acting.executor, ctx.roots, first.owner, runAs!.uid);
  }
  const guardAs = acting.sudo ? { executor: acting.executor, uid: runAs!.uid } : null;
  const batchId = first.batch!.id;
  const batchDir = await prepareBatchDir(acting.executor, ctx.roots, first.owner, batchId);
  await guardDir(ctx, first.owner, batchDir, batchId, guardAs);
  const workdir = spec.workdir ? await resolveWorkdir(acting.executor, ctx.roots, spec.workdir) : null;
  await checkContainerPaths(acting.executor, ctx.roots, spec.container);
  return { spec, runAs, acting, guardAs, batchDir, workdir };
}

/** One member's job directory, data files, secrets and per-index file. */
async function prepareMember(
  ctx: AgentContext,
  common: Awaited<ReturnType<typeof prepareCommon>>,
  lease: Lease,
): Promise<Member> {
  const { acting, runAs, guardAs, batchDir, workdir } = common;
  const executor = acting.executor;
  const spec = checkedJobSpec(lease.spec);
  const jobDir = await prepareJobDir(executor, ctx.roots, lease.owner, lease.jobId, lease.attempt);
  await guardDir(ctx, lease.owner, jobDir, jobDirName(lease.jobId, lease.attempt), guardAs);
  const previousJobDir =
    lease.attempt > 1 ? posix.join(posix.dirname(jobDir), jobDirName(lease.jobId, lease.attempt - 1)) : null;
  const secrets = await writeJobSecrets(executor, ctx.secrets, jobDir, spec.secrets);
  if (secrets.missing.length) {
    throw new Refusal("secret_missing", `secrets not in this cluster's store: ${secrets.missing.join(", ")}`);
  }
  if (spec.inputs?.length) {
    await writeInputs(ctx, executor, jobDir, spec.inputs);
  }
  const index = lease.batch!.index;
  const element = renderArrayElement({
    index,
    jobId: lease.jobId,
    attempt: lease.attempt,
    spec,
    jobDir,
    previousJobDir,
    workdir: workdir ?? jobDir,
    secretsFile: secrets.path,
  });
  for (const file of element.files) {
    await executor.writeFile(`${jobDir}/${file.name}`, file.data, file.mode);
  }
  // A leftover exit file or log from an earlier try must not count as this submission's.
  await executor.rm(`${jobDir}/exitcode`);
  await executor.writeFile(`${batchDir}/${element.indexFile.name}`, element.indexFile.data, element.indexFile.mode);
  if (runAs && !acting.sudo) {
    await handOver(ctx.executor, jobDir, runAs);
  }
  return { lease, index, jobDir };
}
