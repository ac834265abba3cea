/**
 * Sweeps: many jobs in one request (`POST /v1/sweeps`). The gateway expands and validates every
 * element, stores them in one transaction and submits elements that can share a Slurm array as one
 * sbatch, with `maxParallel` as the array's `%N` throttle: the real cap on running elements.
 * Progress is read from the sweep's counts, and element pages only when the counts move, so
 * following 10,000 elements costs a few requests per change, not 10,000 waits.
 */
import { MalformedResponseError, NetworkError, WaitTimeoutError } from "./errors.ts";
import type { components } from "./generated/api.ts";
import type { RawClient } from "./raw.ts";
import { type RetryPolicy, resolveRetry, rideOutOutage, sleep } from "./retry.ts";
import { type Job, type JobSpecInput, isTerminal } from "./types.ts";
import { type Shape, shapes, unwrap } from "./unwrap.ts";

type Schemas = components["schemas"];

/**
 * A sweep: its state folded from its elements', counts per job state, and how many are done.
 * @example const { state, done, total }: Sweep = await client.cancelSweep(id);
 */
export type Sweep = Schemas["Sweep"];
/**
 * The answer to a new sweep: the sweep and every element's job id, in element order.
 * @example const { id, jobIds }: SweepCreated = await client.createSweep({ specs });
 */
export type SweepCreated = Schemas["SweepCreated"];
/**
 * A sweep with one page of its elements, in element order.
 * @example const { counts, elements, nextCursor }: SweepDetail = await client.getSweep(id);
 */
export type SweepDetail = Schemas["SweepDetail"];
/**
 * One element of a sweep: its job id, state, exit code and Slurm id (`<array id>_<index>`).
 * @example for await (const el: SweepElement of client.sweepProgress(id)) console.log(el.index, el.state);
 */
export type SweepElement = Schemas["SweepElement"];
/**
 * One line of a sweep's results: the element's final state, exit code and result.
 * @example for await (const line: SweepResultLine of client.sweepResults(id)) console.log(line.result);
 */
export type SweepResultLine = Schemas["SweepResultLine"];
/**
 * `active` while any element is live; then `completed` only when every element completed.
 * @example if ((await client.getSweep(id)).state === "failed") process.exitCode = 3;
 */
export type SweepState = Schemas["SweepState"];
/**
 * One point of a sweep: `env` and `labels` merged over the base's key by key, `command` replacing
 * its argv, `name` defaulting to `<base name>-<index>`.
 * @example const p: SweepParams = { env: { LR: "0.01" }, labels: { lr: "0.01" } };
 */
export type SweepParams = Schemas["SweepPoint"];
/**
 * Grid values by name: every combination is one element; each name is set as an env variable and
 * a label, and `{NAME}` in the base's command argv is replaced by the value.
 * @example const grid: SweepGrid = { LR: [0.1, 0.01], SEED: [1, 2, 3] }; // 6 elements
 */
export type SweepGrid = Record<string, readonly (string | number | boolean)[]>;
/**
 * The body of `POST /v1/sweeps` as you write it (defaulted spec fields may be left out).
 * @example const request: SweepRequestInput = { base: spec, grid: { LR: [0.1, 0.01] }, maxParallel: 2 };
 */
export type SweepRequestInput = Omit<Schemas["SweepRequest"], "specs" | "base" | "grid"> & {
  specs?: readonly JobSpecInput[];
  base?: JobSpecInput;
  grid?: SweepGrid;
};

/**
 * A list of specs, or a base spec and the points (`params`) and/or `grid` to vary it by.
 * @example const input: SweepInput = { base: spec, params: [{ env: { LR: "0.1" } }, { env: { LR: "0.01" } }] };
 */
export type SweepInput =
  | readonly JobSpecInput[]
  | { base: JobSpecInput; params?: readonly SweepParams[]; grid?: SweepGrid };

/**
 * Options of `sweep`.
 * @example await client.sweep(input, { maxParallel: 4, wait: true, onDone: (job, i) => console.log(i, job.state) });
 */
export type SweepOptions = {
  /**
   * Most elements running at once, enforced by Slurm (the array's `%N` throttle): the parallelism
   * cap. Default: no cap.
   */
  maxParallel?: number;
  /** The sweep's name in lists. Default: the base's name. */
  name?: string;
  /**
   * Most requests in flight while the elements' jobs are read back (after submission, and as each
   * element ends while waiting). Default 8. Submission is one request whatever this is, and it
   * does not limit how many elements run: that is `maxParallel`.
   */
  concurrency?: number;
  /** Wait for every element to reach a final state; an object passes `timeout` (ms) and `pollMs`. Default false. */
  wait?: boolean | (Pick<SweepProgressOptions, "pollMs"> & { timeout?: number });
  /** The request's Idempotency-Key: the same key and input return the same sweep. Default: a random UUID. */
  idempotencyKey?: string;
  signal?: AbortSignal;
  /** Called with each element's job once the sweep is stored (costs one read per element). */
  onSubmit?: (job: Job, index: number) => void;
  /** Called with each element's final job as it ends (with `wait`). */
  onDone?: (job: Job, index: number) => void;
  /** Called with the sweep's counts each time they are read while waiting. */
  onProgress?: (sweep: Sweep) => void;
};

/**
 * Options of `sweepProgress`.
 * @example for await (const el of client.sweepProgress(id, { onSweep: (s) => console.log(s.done, "/", s.total) })) {}
 */
export type SweepProgressOptions = {
  /** Stop the iteration (and the request in flight); the iterator rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Pause between reads of the sweep's counts, ms; it doubles while nothing changes, up to 10 s. Default 1000. */
  pollMs?: number;
  /** Called with the sweep (counts per state, done, total) every time it is read. */
  onSweep?: (sweep: Sweep) => void;
};

/**
 * One page of `GET /v1/sweeps/{id}`.
 * @example const page = await client.getSweep(id, { cursor: first.nextCursor ?? undefined });
 */
export type SweepPageOptions = { cursor?: string; limit?: number; signal?: AbortSignal };

/**
 * Options of `listSweeps`.
 * @example for await (const s of client.listSweeps({ max: 10 })) console.log(s.id, s.state);
 */
export type ListSweepsOptions = { pageSize?: number; max?: number; signal?: AbortSignal };

/** Elements per page read while following a sweep (the gateway's largest page). */
const PAGE = 500;
const MAX_POLL_MS = 10_000;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isSweep = (v: unknown): v is Record<string, unknown> =>
  isObject(v) &&
  typeof v.id === "string" &&
  typeof v.state === "string" &&
  typeof v.total === "number" &&
  typeof v.done === "number" &&
  isObject(v.counts);
const isElement = (v: unknown) =>
  isObject(v) && typeof v.index === "number" && typeof v.jobId === "string" && typeof v.state === "string";
const isCursor = (v: unknown) => v === null || typeof v === "string";

/** What the sweep helpers check of each answer: only the fields they rely on. */
const sweepShapes = {
  sweep: { what: "a sweep", test: isSweep },
  created: {
    what: "a created sweep with its job ids",
    test: (v: unknown) => isSweep(v) && Array.isArray(v.jobIds) && v.jobIds.every((id) => typeof id === "string"),
  },
  detail: {
    what: "a sweep with a page of elements",
    test: (v: unknown) =>
      isSweep(v) && Array.isArray(v.elements) && v.elements.every(isElement) && isCursor(v.nextCursor),
  },
  page: {
    what: "a page of sweeps",
    test: (v: unknown) => isObject(v) && Array.isArray(v.items) && v.items.every(isSweep) && isCursor(v.nextCursor),
  },
  line: { what: "a sweep result line", test: isElementLine },
} satisfies Record<string, Shape>;

function isElementLine(v: unknown): boolean {
  return isObject(v) && typeof v.index === "number" && typeof v.jobId === "string" && typeof v.state === "string";
}

/**
 * The request body for a {@link SweepInput}: a list → `specs`, `{ base, params, grid }` → `base`,
 * `points`, `grid`. The gateway expands and validates; nothing is expanded here.
 * @example toSweepRequest({ base, params: [{}, {}] }, { maxParallel: 2 }) // { base, points: [{}, {}], maxParallel: 2 }
 */
export function toSweepRequest(input: SweepInput, options: Pick<SweepOptions, "maxParallel" | "name"> = {}) {
  const extra: Pick<SweepRequestInput, "maxParallel" | "name"> = {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.maxParallel === undefined ? {} : { maxParallel: options.maxParallel }),
  };
  if (Array.isArray(input)) {
    return { specs: [...(input as readonly JobSpecInput[])], ...extra } satisfies SweepRequestInput;
  }
  const { base, params, grid } = input as Exclude<SweepInput, readonly JobSpecInput[]>;
  return {
    base,
    ...(params === undefined ? {} : { points: [...params] }),
    ...(grid === undefined ? {} : { grid }),
    ...extra,
  } satisfies SweepRequestInput;
}

/**
 * `POST /v1/sweeps`: stores every element at once. Always sends an Idempotency-Key, so the
 * transport may retry it and a re-run with the same key returns the same sweep.
 * @example const created = await createSweep(raw, { specs }, { idempotencyKey: "nightly" });
 */
export function createSweep(
  raw: RawClient,
  request: SweepRequestInput,
  options: { idempotencyKey?: string; signal?: AbortSignal } = {},
): Promise<SweepCreated> {
  return unwrap(
    raw.POST("/v1/sweeps", {
      params: { header: { "idempotency-key": options.idempotencyKey ?? globalThis.crypto.randomUUID() } },
      // The generated body type marks defaulted spec fields required; the gateway fills them in.
      body: request as Schemas["SweepRequest"],
      signal: options.signal,
    }),
    sweepShapes.created,
  ) as Promise<SweepCreated>;
}

/**
 * `GET /v1/sweeps/{id}`: counts, state and one page of elements.
 * @example const { counts, elements } = await getSweep(raw, id, { limit: 50 });
 */
export function getSweep(raw: RawClient, id: string, options: SweepPageOptions = {}): Promise<SweepDetail> {
  return unwrap(
    raw.GET("/v1/sweeps/{id}", {
      params: {
        path: { id },
        query: {
          ...(options.cursor ? { cursor: options.cursor } : {}),
          ...(options.limit === undefined ? {} : { limit: options.limit }),
        },
      },
      signal: options.signal,
    }),
    sweepShapes.detail,
  ) as Promise<SweepDetail>;
}

/**
 * `POST /v1/sweeps/{id}/cancel`: cancels every live element; idempotent.
 * @example const sweep = await cancelSweep(raw, id);
 */
export function cancelSweep(raw: RawClient, id: string, options: { signal?: AbortSignal } = {}): Promise<Sweep> {
  return unwrap(
    raw.POST("/v1/sweeps/{id}/cancel", { params: { path: { id } }, signal: options.signal }),
    sweepShapes.sweep,
  ) as Promise<Sweep>;
}

/**
 * Your sweeps, newest first, across pages.
 * @example for await (const s of listSweeps(raw, { max: 5 })) console.log(s.id);
 */
export async function* listSweeps(raw: RawClient, options: ListSweepsOptions = {}): AsyncGenerator<Sweep> {
  const max = options.max ?? Number.POSITIVE_INFINITY;
  let cursor: string | undefined;
  let yielded = 0;
  do {
    const page = (await unwrap(
      raw.GET("/v1/sweeps", {
        params: { query: { limit: options.pageSize ?? 100, ...(cursor ? { cursor } : {}) } },
        signal: options.signal,
      }),
      sweepShapes.page,
    )) as { items: Sweep[]; nextCursor: string | null };
    for (const sweep of page.items) {
      if (yielded >= max) {
        return;
      }
      yielded++;
      yield sweep;
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor && yielded < max);
}

/**
 * `GET /v1/sweeps/{id}/results`: one line per element, in element order, parsed as it streams in
 * (a 10,000-element sweep is never held in memory at once).
 * @example for await (const line of sweepResults(raw, id)) console.log(line.index, line.result);
 */
export async function* sweepResults(
  raw: RawClient,
  id: string,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<SweepResultLine> {
  const { data, error, response } = await raw.GET("/v1/sweeps/{id}/results", {
    params: { path: { id } },
    headers: { accept: "application/x-ndjson, application/problem+json" },
    parseAs: "stream",
    signal: options.signal,
  });
  if (error !== undefined || !data) {
    // Problems and empty bodies go through the one mapping of answers to typed errors.
    await unwrap(Promise.resolve({ data: undefined, error, response }), sweepShapes.line);
    return;
  }
  let number = 0;
  for await (const text of lines(data, response.url, options.signal)) {
    number++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw malformedLine(response, number, "not valid JSON", text);
    }
    if (!isElementLine(value)) {
      throw malformedLine(response, number, "not a sweep result line", text);
    }
    yield value as SweepResultLine;
  }
}

function malformedLine(response: Response, number: number, what: string, text: string) {
  return new MalformedResponseError(`line ${number} of the results is ${what}`, {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    body: text,
    url: response.url,
  });
}

/** The non-empty lines of a byte stream, decoded as UTF-8 (a line may span chunks). */
async function* lines(body: ReadableStream<Uint8Array>, url: string, signal?: AbortSignal): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        // A connection cut mid-body: say so as the client says "no response".
        throw signal?.aborted ? signal.reason : new NetworkError(url, err);
      }
      if (chunk.done) {
        buffer += decoder.decode();
        break;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
        const line = buffer.slice(0, at).trim();
        buffer = buffer.slice(at + 1);
        if (line) {
          yield line;
        }
      }
    }
    if (buffer.trim()) {
      yield buffer.trim();
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/**
 * Yields each element once, as it reaches a final state (those already final first), and ends
 * when the sweep is no longer `active`. Reads the sweep's counts (one small request) and pages of
 * elements only when the number done moved, skipping pages whose elements have all been yielded.
 * Idle reads back off from `pollMs` to 10 s. Rides out a gateway outage of up to `policy.outageMs`.
 * @example for await (const el of followSweep(raw, id)) console.log(el.index, el.state);
 */
export async function* followSweep(
  raw: RawClient,
  id: string,
  options: SweepProgressOptions = {},
  policy: RetryPolicy = resolveRetry(),
): AsyncGenerator<SweepElement> {
  const { signal, onSweep } = options;
  const pollMs = Math.max(10, options.pollMs ?? 1_000);
  const read = (page: SweepPageOptions) => rideOutOutage(policy, () => getSweep(raw, id, { ...page, signal }), signal);
  const yielded = new Set<number>();
  // The cursor of each page of elements (stable: elements are paged in element order), and
  // whether it may still hold an element that has not ended.
  const pages: { cursor: string | undefined; open: boolean }[] = [{ cursor: undefined, open: true }];
  let lastDone = -1;
  let delay = pollMs;
  for (;;) {
    signal?.throwIfAborted();
    const sweep = await read({ limit: 1 });
    onSweep?.(sweep);
    const over = sweep.state !== "active";
    if (sweep.done !== lastDone || over) {
      delay = pollMs;
      lastDone = sweep.done;
      const wanted = over ? sweep.total : sweep.done;
      for (let k = 0; k < pages.length && yielded.size < wanted; k++) {
        const page = pages[k] as (typeof pages)[number];
        if (!page.open) {
          continue;
        }
        const detail = await read({ cursor: page.cursor, limit: PAGE });
        let open = false;
        for (const element of detail.elements) {
          if (yielded.has(element.index)) {
            continue;
          }
          if (isTerminal(element.state)) {
            yielded.add(element.index);
            yield element;
          } else {
            open = true;
          }
        }
        page.open = open;
        if (detail.nextCursor && k === pages.length - 1) {
          pages.push({ cursor: detail.nextCursor, open: true });
        }
      }
      if (over) {
        return;
      }
    } else {
      delay = Math.min(MAX_POLL_MS, delay * 2);
    }
    await sleep(delay, signal);
  }
}

/** What `runSweep` needs from the client. */
export type SweepDeps = { raw: RawClient; policy: RetryPolicy };

/** The elements' jobs in element order, carrying the sweep's id (for `getSweep`, results, cancel). */
export type SweepJobs = Job[] & { sweepId: string };

/**
 * Creates the sweep in one request and returns the elements' jobs in element order; with `wait`,
 * their final states, followed through {@link followSweep} (never one wait per element).
 * @example const jobs = await runSweep({ raw, policy }, { base, grid: { LR: [0.1, 0.01] } }, { maxParallel: 1, wait: true });
 */
export async function runSweep(deps: SweepDeps, input: SweepInput, options: SweepOptions = {}): Promise<SweepJobs> {
  const { raw, policy } = deps;
  const { signal } = options;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 8));
  const created = await createSweep(raw, toSweepRequest(input, options), {
    idempotencyKey: options.idempotencyKey,
    signal,
  });
  const getJob = (jobId: string, s: AbortSignal | undefined) =>
    rideOutOutage(
      policy,
      () => unwrap(raw.GET("/v1/jobs/{id}", { params: { path: { id: jobId } }, signal: s }), shapes.job),
      s,
    );
  if (!options.wait || options.onSubmit) {
    const jobs = await pool(created.jobIds, concurrency, signal, async (jobId, index) => {
      const job = await getJob(jobId, signal);
      options.onSubmit?.(job, index);
      return job;
    });
    if (!options.wait) {
      return Object.assign(jobs, { sweepId: created.id });
    }
  }
  const extra = typeof options.wait === "object" ? options.wait : {};
  const deadline = extra.timeout === undefined ? undefined : AbortSignal.timeout(extra.timeout);
  const both = deadline && signal ? AbortSignal.any([signal, deadline]) : (deadline ?? signal);
  let last: Sweep = created;
  const jobs: Job[] = new Array(created.jobIds.length);
  try {
    const elements = followSweep(
      raw,
      created.id,
      {
        signal: both,
        pollMs: extra.pollMs,
        onSweep: (sweep) => {
          last = sweep;
          options.onProgress?.(sweep);
        },
      },
      policy,
    );
    await forEachBounded(elements, concurrency, async (element) => {
      const job = await getJob(element.jobId, both);
      jobs[element.index] = job;
      options.onDone?.(job, element.index);
    });
  } catch (err) {
    if (deadline?.aborted && !signal?.aborted) {
      const timedOut = new WaitTimeoutError({ id: created.id, state: last.state }, extra.timeout ?? 0);
      timedOut.message = `sweep ${created.id} is still ${last.state} after ${Math.round((extra.timeout ?? 0) / 1000)}s (${last.done} of ${last.total} done)`;
      throw timedOut;
    }
    throw err;
  }
  return Object.assign(jobs, { sweepId: created.id });
}

/**
 * Runs `fn` on each item as the iterator yields it, at most `limit` at once; the first error stops
 * the iteration and is thrown once the calls in flight settle.
 * @example await forEachBounded(followSweep(raw, id), 4, async (el) => console.log(el.index));
 */
export async function forEachBounded<T>(
  items: AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  try {
    for await (const item of items) {
      const call: Promise<void> = fn(item)
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => running.delete(call));
      running.add(call);
      if (running.size >= limit) {
        await Promise.race(running);
      }
      if (failure) {
        break;
      }
    }
  } finally {
    await Promise.all(running);
  }
  if (failure) {
    throw failure.error;
  }
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
