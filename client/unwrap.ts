/**
 * From openapi-fetch's `{ data, error, response }` to "the data or a thrown typed error", with a
 * light shape check so a response that parses but is not what the route promises fails loudly
 * here rather than as `undefined` three calls later.
 */
import { MalformedResponseError, SlurmgateError } from "./errors.ts";
import { parseRetryAfter } from "./retry.ts";
import type { Problem } from "./types.ts";

type FetchResult<T> = { data?: T; error?: unknown; response: Response };

/**
 * A named predicate over a parsed body.
 * @example const hasId: Shape = { what: "a job", test: (v) => typeof (v as { id?: unknown }).id === "string" };
 */
export type Shape = { what: string; test: (value: unknown) => boolean };

/**
 * Awaits an openapi-fetch call; returns its data or throws SlurmgateError / MalformedResponseError.
 * @example const me = await unwrap(raw.GET("/v1/me"), shapes.me);
 */
export async function unwrap<T>(call: Promise<FetchResult<T>>, shape?: Shape): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined) {
    throw new SlurmgateError(error as Problem, secondsOf(parseRetryAfter(response.headers.get("retry-after"))));
  }
  if (shape && !shape.test(data)) {
    throw new MalformedResponseError(`expected ${shape.what}`, {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      body: safeJson(data),
      url: response.url,
    });
  }
  return data as T;
}

function secondsOf(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return String(value);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isJob = (v: unknown) => isObject(v) && typeof v.id === "string" && typeof v.state === "string";
const itemsOf = (test: (v: unknown) => boolean) => (v: unknown) =>
  isObject(v) && Array.isArray(v.items) && v.items.every(test);

/**
 * The shapes the helpers check. Only the fields the helpers themselves rely on.
 * @example await unwrap(raw.GET("/v1/jobs/{id}", { params: { path: { id } } }), shapes.job);
 */
export const shapes = {
  job: { what: "a job", test: isJob },
  page: {
    what: "a page of jobs",
    test: (v: unknown) =>
      itemsOf(isJob)(v) && isObject(v) && (v.nextCursor === null || typeof v.nextCursor === "string"),
  },
  events: {
    what: "a job with its events",
    test: (v: unknown) => isObject(v) && isJob(v.job) && Array.isArray(v.events) && typeof v.lastSeq === "number",
  },
  logChunk: {
    what: "a log chunk",
    test: (v: unknown) =>
      isObject(v) && typeof v.data === "string" && typeof v.nextOffset === "number" && typeof v.complete === "boolean",
  },
  items: { what: "a list of items", test: itemsOf(isObject) },
  text: { what: "text", test: (v: unknown) => typeof v === "string" },
  tasks: {
    what: "a job's tasks",
    test: (v: unknown) => itemsOf(isObject)(v) && isObject(v) && typeof v.jobId === "string" && isObject(v.counts),
  },
  feed: {
    what: "a page of the event feed",
    test: (v: unknown) => isObject(v) && Array.isArray(v.events) && typeof v.cursor === "string",
  },
  me: { what: "a token's owner", test: (v: unknown) => isObject(v) && typeof v.kind === "string" },
  object: { what: "an object", test: isObject },
  preflight: {
    what: "a preflight",
    test: (v: unknown) =>
      isObject(v) && Array.isArray(v.candidates) && (v.cluster === null || typeof v.cluster === "string"),
  },
} satisfies Record<string, Shape>;
