/**
 * The one reader of stored `jobs` / `job_events` rows. Every JSON column is parsed here and nowhere
 * else, without throwing: a row written by an older version, edited by hand or damaged on disk must
 * never turn a list, a lease batch or another job's request into a 500.
 */
import type { Row } from "@libsql/client";
import { type Job, type JobEvent, JobSpec, JobState, isTerminal } from "../../schemas/index.ts";

export const iso = (ms: number) => new Date(ms).toISOString();

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** The reason code of a job whose stored spec fails the schema (a RejectCode). */
export const INVALID_SPEC = "invalid_spec";

export type StoredSpec = { ok: true; spec: JobSpec } | { ok: false; reason: string };

/** Parses a stored `spec` column against today's JobSpec; says why when it does not hold. */
export function parseStoredSpec(raw: unknown): StoredSpec {
  let value: unknown;
  try {
    value = JSON.parse(String(raw));
  } catch {
    return { ok: false, reason: "the stored job spec is not JSON" };
  }
  const parsed = JobSpec.safeParse(value);
  if (parsed.success) {
    return { ok: true, spec: parsed.data };
  }
  const issue = parsed.error.issues[0];
  const path = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return {
    ok: false,
    reason: `the stored job spec is invalid: ${path}${issue?.message ?? "does not match the schema"}`,
  };
}

/** Parses a stored JSON column; `fallback` when it is missing or not JSON. */
function parseJson<T>(raw: unknown, fallback: T): T {
  if (raw === null || raw === undefined) {
    return fallback;
  }
  try {
    return JSON.parse(String(raw)) as T;
  } catch {
    return fallback;
  }
}

function labelsOf(raw: unknown): Record<string, string> {
  const value = parseJson<unknown>(raw, {});
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return {};
  }
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
  );
}

/** A stored state outside JobState reads as `rejected`: no agent can act on it. */
export function stateOf(raw: unknown): { state: JobState; known: boolean } {
  const parsed = JobState.safeParse(raw);
  return parsed.success ? { state: parsed.data, known: true } : { state: "rejected", known: false };
}

/**
 * A job as users see it. A row whose spec no longer parses shows `spec: null` in its stored state
 * (reads never rewrite a job; the lease call that meets such a row ends it as `rejected`, with an
 * event, see services/agent.ts); while it is live, code `invalid_spec` and the reason say why.
 */
export function rowToJob(row: Row): Job {
  const stored = parseStoredSpec(row.spec);
  const { state, known } = stateOf(row.state);
  // A finished job keeps how it ended; a live one says why it cannot go on.
  const broken = !known || (!stored.ok && !isTerminal(state));
  const why = !known
    ? `the stored state ${JSON.stringify(String(row.state))} is not a job state`
    : stored.ok
      ? ""
      : stored.reason;
  return {
    id: String(row.id),
    owner: String(row.owner),
    name: String(row.name),
    state,
    reason: broken ? why : str(row.reason),
    code: broken ? INVALID_SPEC : str(row.code),
    cluster: String(row.cluster),
    partition: str(row.partition),
    attempt: Number(row.attempt),
    slurmJobId: str(row.slurm_job_id),
    exitCode: num(row.exit_code),
    signal: num(row.signal),
    cancelRequested: Boolean(Number(row.cancel_requested)),
    labels: labelsOf(row.labels),
    spec: stored.ok ? stored.spec : null,
    result: parseJson<unknown>(row.result, null),
    sweep:
      row.sweep_id === null || row.sweep_id === undefined
        ? null
        : { id: String(row.sweep_id), index: Number(row.sweep_index) },
    lastSeq: Number(row.last_seq),
    createdAt: iso(Number(row.created_at)),
    updatedAt: iso(Number(row.updated_at)),
  };
}

export function rowToEvent(row: Row): JobEvent {
  const state = row.state ? JobState.safeParse(row.state) : undefined;
  return {
    seq: Number(row.seq),
    at: iso(Number(row.at)),
    actor: String(row.actor),
    type: (["state", "cancel_requested", "note"].includes(String(row.type))
      ? String(row.type)
      : "note") as JobEvent["type"],
    ...(state?.success ? { state: state.data } : {}),
    ...(row.detail ? { detail: String(row.detail) } : {}),
  };
}

/** Columns the API needs; leaves out the rendered script and lease internals. */
export const JOB_COLUMNS =
  "id, owner, name, state, reason, code, cluster, partition, attempt, slurm_job_id, exit_code, signal, cancel_requested, labels, spec, result, sweep_id, sweep_index, last_seq, created_at, updated_at";
