/**
 * `sweep`: submit many jobs with a cap on requests in flight, then (optionally) wait for all.
 * Each job's Idempotency-Key is `<sweep key>-<index>`, so re-running a sweep with the same
 * `idempotencyKey` after a failure resubmits nothing that already went through.
 */
import type { Job, JobSpecInput } from "./types.ts";
import type { WaitOptions } from "./wait.ts";

/**
 * One point of a parameter sweep: fields that replace the base's. `env`, `labels` and
 * `resources` are merged key by key; `name` defaults to `<base name>-<index>`.
 * @example const p: SweepParams = { env: { LR: "0.01" }, labels: { lr: "0.01" } };
 */
export type SweepParams = Partial<JobSpecInput>;

/**
 * A list of specs, or a base spec and the points to vary it by.
 * @example const input: SweepInput = { base: spec, params: [{ env: { LR: "0.1" } }, { env: { LR: "0.01" } }] };
 */
export type SweepInput = readonly JobSpecInput[] | { base: JobSpecInput; params: readonly SweepParams[] };

/**
 * Options of `sweep`.
 * @example await client.sweep(input, { concurrency: 4, wait: true, onSubmit: (job, i) => console.log(i, job.id) });
 */
export type SweepOptions = {
  /** Most requests in flight (submits, then waits). Default 8. */
  concurrency?: number;
  /** Wait for every job to reach a terminal state; an object passes `timeout`/`onEvent`. Default false. */
  wait?: boolean | Pick<WaitOptions, "timeout" | "onEvent">;
  /** Base of the per-job Idempotency-Keys. Default: a random UUID (fresh sweep). */
  idempotencyKey?: string;
  signal?: AbortSignal;
  onSubmit?: (job: Job, index: number) => void;
  onDone?: (job: Job, index: number) => void;
};

/** What sweep needs from the client; passed in so this module stays free of the client's wiring. */
export type SweepDeps = {
  submit: (spec: JobSpecInput, options: { idempotencyKey: string; signal?: AbortSignal }) => Promise<Job>;
  wait: (id: string, options: WaitOptions) => Promise<Job>;
};

/**
 * Turns a base and its points into full specs.
 * @example expandSweep({ base: { name: "t", command: ["x"] }, params: [{}, {}] }).map((s) => s.name) // ["t-0", "t-1"]
 */
export function expandSweep(input: SweepInput): JobSpecInput[] {
  if (Array.isArray(input)) {
    return [...(input as readonly JobSpecInput[])];
  }
  const { base, params } = input as { base: JobSpecInput; params: readonly SweepParams[] };
  return params.map((p, index) => ({
    ...base,
    ...p,
    name: p.name ?? `${base.name}-${index}`,
    env: { ...base.env, ...p.env },
    labels: { ...base.labels, ...p.labels },
    resources: { ...base.resources, ...p.resources },
  }));
}

/**
 * Submits every spec (at most `concurrency` at once) and returns the jobs in input order; with
 * `wait`, their final states. The first error stops new work and is thrown once in-flight work settles.
 * @example const jobs = await runSweep(deps, specs, { concurrency: 4, wait: true });
 */
export async function runSweep(deps: SweepDeps, input: SweepInput, options: SweepOptions = {}): Promise<Job[]> {
  const specs = expandSweep(input);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 8));
  const key = options.idempotencyKey ?? globalThis.crypto.randomUUID();
  const { signal } = options;
  const jobs = await pool(specs, concurrency, signal, async (spec, index) => {
    const job = await deps.submit(spec, { idempotencyKey: `${key}-${index}`, signal });
    options.onSubmit?.(job, index);
    return job;
  });
  if (!options.wait) {
    return jobs;
  }
  const extra = typeof options.wait === "object" ? options.wait : {};
  return pool(jobs, concurrency, signal, async (job, index) => {
    const done = await deps.wait(job.id, { ...extra, signal });
    options.onDone?.(done, index);
    return done;
  });
}

/**
 * Maps `items` through `fn` with at most `limit` calls in flight, keeping order.
 * @example await pool([1, 2, 3], 2, undefined, async (n) => n * 2) // [2, 4, 6]
 */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        signal?.throwIfAborted();
        results[index] = await fn(items[index] as T, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) {
    throw failure.error;
  }
  return results;
}
