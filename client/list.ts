/**
 * `list`: every job matching a filter, newest first, as an async iterator that follows
 * `nextCursor` page by page.
 */
import type { RawClient } from "./raw.ts";
import type { Job, JobPage, JobState } from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";

/**
 * What `list` may filter by.
 * @example client.list({ state: "running", label: { sweep: "lr" } })
 */
export type ListFilter = {
  state?: JobState;
  cluster?: string;
  /** `"key=value"` or a record; with several keys the first is filtered by the gateway, the rest here. */
  label?: string | Record<string, string>;
  /** Jobs per request (1–500). Default 100. */
  pageSize?: number;
  /** Stop after this many jobs. Default: all. */
  max?: number;
  signal?: AbortSignal;
};

/**
 * One page of jobs.
 * @example const { items, nextCursor } = await listPage(raw, { state: "queued" });
 */
export function listPage(raw: RawClient, filter: ListFilter & { cursor?: string } = {}): Promise<JobPage> {
  const [first] = labelPairs(filter.label);
  return unwrap(
    raw.GET("/v1/jobs", {
      params: {
        query: {
          limit: filter.pageSize ?? 100,
          ...(filter.state ? { state: filter.state } : {}),
          ...(filter.cluster ? { cluster: filter.cluster } : {}),
          ...(first ? { label: `${first[0]}=${first[1]}` } : {}),
          ...(filter.cursor ? { cursor: filter.cursor } : {}),
        },
      },
      signal: filter.signal,
    }),
    shapes.page,
  ) as Promise<JobPage>;
}

/**
 * Yields every matching job across pages.
 * @example for await (const job of listJobs(raw, { state: "failed" })) console.log(job.id);
 */
export async function* listJobs(raw: RawClient, filter: ListFilter = {}): AsyncGenerator<Job> {
  const rest = labelPairs(filter.label).slice(1);
  const max = filter.max ?? Number.POSITIVE_INFINITY;
  let cursor: string | undefined;
  let yielded = 0;
  do {
    const page = await listPage(raw, { ...filter, cursor });
    for (const job of page.items) {
      if (yielded >= max) {
        return;
      }
      if (rest.every(([k, v]) => job.labels[k] === v)) {
        yielded++;
        yield job;
      }
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor && yielded < max);
}

function labelPairs(label: ListFilter["label"]): [string, string][] {
  if (label === undefined) {
    return [];
  }
  if (typeof label === "string") {
    const at = label.indexOf("=");
    return at < 0 ? [[label, ""]] : [[label.slice(0, at), label.slice(at + 1)]];
  }
  return Object.entries(label);
}
