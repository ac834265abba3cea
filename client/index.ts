/**
 * The slurmgate client: a typed openapi-fetch client plus the helpers people need (submit with a
 * safe retry key, paginate, wait over server-sent events or long-poll, follow logs, sweeps and their
 * progress). Web APIs only: the same module runs in Node ≥ 20, Deno and browsers.
 */
import createFetchClient from "openapi-fetch";
import { type AdminApi, createAdminApi } from "./admin.ts";
import { type BrowseOptions, type FileBytes, type ReadOptions, browseDir, readEnd } from "./browse.ts";
import { type WebhookApi, createWebhookApi } from "./webhook-api.ts";
import type { paths } from "./generated/api.ts";
import { type ListFilter, listJobs, listPage } from "./list.ts";
import { type LogChunkOptions, type LogsOptions, followLogs, readLogChunk } from "./logs.ts";
import { type Downloaded, type FilesOptions, downloadFiles, listFiles } from "./outputs.ts";
import type { RawClient } from "./raw.ts";
import { type RetryOptions, resolveRetry } from "./retry.ts";
import {
  type ListSweepsOptions,
  type Sweep,
  type SweepCreated,
  type SweepDetail,
  type SweepElement,
  type SweepInput,
  type SweepOptions,
  type SweepJobs,
  type SweepPageOptions,
  type SweepProgressOptions,
  type SweepRequestInput,
  type SweepResultLine,
  cancelSweep,
  createSweep,
  followSweep,
  getSweep,
  listSweeps,
  runSweep,
  sweepResults,
} from "./sweep.ts";
import { type FetchLike, createTransport } from "./transport.ts";
import type {
  ClusterView,
  CreatedToken,
  DirListing,
  Job,
  JobEvents,
  JobFile,
  JobPage,
  JobSpec,
  JobSpecInput,
  JobTasks,
  LogChunk,
  Me,
  Preflight,
  FeedEvent,
} from "./types.ts";
import { type UploadOptions, type UploadSource, type UploadedFile, uploadFile } from "./upload.ts";
import { shapes, unwrap } from "./unwrap.ts";
import { type WaitOptions, waitForJob } from "./wait.ts";
import {
  type EventsOptions,
  type FeedOptions,
  type WatchOptions,
  type WatchedEvent,
  fetchEvents,
  followFeed,
  watchJob,
} from "./watch.ts";

/** The variable (and, in braces, the argv reference) a staged cache's path is read from: one rule, in schemas/. */
export { cacheEnvName } from "../schemas/cache.ts";
export * from "./errors.ts";
export * from "./types.ts";
export type { AdminApi } from "./admin.ts";
export type { BrowseOptions, FileBytes, ReadOptions } from "./browse.ts";
export type { ListFilter } from "./list.ts";
export type { LogChunkOptions, LogStream, LogsOptions } from "./logs.ts";
export { type Downloaded, type FilesOptions, IntegrityError, selectFiles } from "./outputs.ts";
export type { RawClient } from "./raw.ts";
export type { OutageInfo, RetryInfo, RetryOptions } from "./retry.ts";
export { toSweepRequest } from "./sweep.ts";
export type {
  ListSweepsOptions,
  Sweep,
  SweepCreated,
  SweepDetail,
  SweepElement,
  SweepGrid,
  SweepInput,
  SweepOptions,
  SweepJobs,
  SweepPageOptions,
  SweepParams,
  SweepProgressOptions,
  SweepRequestInput,
  SweepResultLine,
  SweepState,
} from "./sweep.ts";
export type { FetchLike } from "./transport.ts";
export type { UploadedFile, UploadOptions, UploadSource } from "./upload.ts";
export { type DeviceAuthorization, pollDeviceToken, startDeviceAuthorization } from "./device-flow.ts";
export { discover, type OidcEndpoints, type OidcTokens, refreshTokens } from "./oidc.ts";
export type { WaitOptions } from "./wait.ts";
export type { EventsOptions, FeedOptions, WatchOptions, WatchedEvent } from "./watch.ts";
export { readEventStream, type SseMessage } from "./sse.ts";
export type {
  Webhook,
  WebhookApi,
  WebhookCreated,
  WebhookDelivery,
  WebhookEventType,
  WebhookInput,
} from "./webhook-api.ts";
export {
  DEFAULT_TOLERANCE_SECONDS,
  type WebhookHeaders,
  type WebhookVerification,
  verifyWebhook,
} from "./webhooks.ts";

/**
 * Options of {@link createClient}.
 * @example const options: ClientOptions = { baseUrl: "http://127.0.0.1:8080", token: "sgu_…" };
 */
export type ClientOptions = {
  /** The gateway's URL, e.g. `https://slurmgate.example.org`. */
  baseUrl: string;
  /**
   * A bearer token (`sgu_…` user, `sgk_…` admin, `sga_…` agent, or an OIDC ID token), or a function
   * called before every request that returns the token to send: the place to refresh one that is
   * about to expire (see `refreshTokens` in `client/oidc.ts`).
   */
  token?: string | (() => Promise<string>);
  /** A fetch to use instead of the global one (called with a Request). */
  fetch?: FetchLike;
  /** How network errors, 429 and 503 are retried (`{ attempts: 1 }` turns that off), and how long waits ride out an outage. */
  retry?: RetryOptions;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
};

/**
 * Options of {@link SlurmgateClient.submit}.
 * @example await client.submit(spec, { idempotencyKey: "nightly-2026-01-01" });
 */
export type SubmitOptions = {
  /** Makes retries and re-runs safe: the same key and body return the same job. Default: a random UUID. */
  idempotencyKey?: string;
  signal?: AbortSignal;
};

/**
 * What {@link createClient} returns.
 * @example const job = await client.wait((await client.submit(spec)).id);
 */
export type SlurmgateClient = WebhookApi & {
  /** The gateway URL this client talks to. */
  readonly baseUrl: string;
  /** The typed openapi-fetch client, for `{ data, error, response }` calls (retries and checks included). */
  readonly raw: RawClient;
  /** Submits a job; retried safely thanks to its Idempotency-Key. */
  submit(spec: JobSpecInput, options?: SubmitOptions): Promise<Job>;
  /**
   * Where the job would run and why, on every cluster you may use, with Slurm's start estimate on
   * each that fits (`estimate: false` skips asking the agents); nothing is stored.
   */
  preflight(spec: JobSpecInput, options?: { signal?: AbortSignal; estimate?: boolean }): Promise<Preflight>;
  /** A job with its event history. */
  get(id: string, options?: { signal?: AbortSignal }): Promise<Job>;
  /** Every matching job, newest first, across pages. */
  list(filter?: ListFilter): AsyncGenerator<Job>;
  /** One page of jobs, for callers that handle cursors themselves. */
  listPage(filter?: ListFilter & { cursor?: string }): Promise<JobPage>;
  /** Cancels a job (idempotent); returns the job as it is now. */
  cancel(id: string, options?: { signal?: AbortSignal }): Promise<Job>;
  /** An array job's tasks: state, exit code and reason of each, and counts per state (empty for a plain job). */
  tasks(id: string, options?: { signal?: AbortSignal }): Promise<JobTasks>;
  /** The exact batch script the agent gave sbatch for the job (404 until it has reported it submitted). */
  script(id: string, options?: { signal?: AbortSignal }): Promise<string>;
  /** Lists a directory of the job's directory (`""`: the directory itself), through its cluster's agent. */
  browse(id: string, path?: string, options?: BrowseOptions): Promise<DirListing>;
  /** The first `bytes` (default 4096) of a file in the job's directory. */
  head(id: string, path: string, options?: ReadOptions): Promise<FileBytes>;
  /** The last `bytes` (default 4096) of a file in the job's directory. */
  tail(id: string, path: string, options?: ReadOptions): Promise<FileBytes>;
  /** One long-poll of a job's events after `after`. */
  events(id: string, options?: EventsOptions): Promise<JobEvents>;
  /** Waits (over the event stream, else by long-poll) until the job is terminal (its final attempt) or reaches one of `until`; rides out gateway restarts. */
  wait(id: string, options?: WaitOptions): Promise<Job>;
  /**
   * A job's events as they happen (server-sent events, resumed after drops and gateway restarts);
   * the loop ends once the job has finished. Falls back to long-poll where no stream is offered.
   * @example for await (const e of client.watch(id)) console.log(e.seq, e.state);
   */
  watch(id: string, options?: WatchOptions): AsyncGenerator<WatchedEvent, Job>;
  /**
   * Every event of your jobs as it happens, in order; keep `cursor` to resume later. Never ends by itself.
   * @example for await (const e of client.feed()) console.log(e.jobId, e.state);
   */
  feed(options?: FeedOptions): AsyncGenerator<FeedEvent>;
  /** The job's stdout (or stderr) as text chunks; `follow` keeps reading until the job ends. */
  logs(id: string, options?: LogsOptions): AsyncGenerator<string>;
  /** One read of the logs endpoint. */
  logChunk(id: string, options?: LogChunkOptions): Promise<LogChunk>;
  /** The outputs the job brought back (JobSpec.outputs), by path: the newest attempt's, or `attempt`'s. */
  listFiles(jobId: string, options?: FilesOptions): Promise<JobFile[]>;
  /**
   * Downloads one output (`model/final.pt`) to `dest` (a file, or a directory to put it in), or
   * every output under a prefix (`results/`) into the directory `dest`, streaming each to disk and
   * keeping it only when its sha256 matches (else IntegrityError). Node, Deno or Bun only.
   * @example await client.download(job.id, "results/", "./out/");
   */
  download(jobId: string, path: string, dest: string, options?: FilesOptions): Promise<Downloaded[]>;
  /** Clusters you may use, with their partitions and whether an agent is alive. */
  clusters(): Promise<ClusterView[]>;
  /** Who the token belongs to. */
  me(): Promise<Me>;
  /**
   * A personal agent token for yourself on one cluster: its agent leases only your jobs.
   * @example const { token } = await client.createAgentToken({ cluster: "alpha", label: "login1" });
   */
  createAgentToken(input: { cluster: string; label?: string; expiresInDays?: number }): Promise<CreatedToken>;
  /**
   * Submits many jobs as one sweep (one request) and returns their jobs in element order; with
   * `wait`, their final states. `maxParallel` caps how many run at once (enforced by Slurm).
   */
  sweep(input: SweepInput, options?: SweepOptions): Promise<SweepJobs>;
  /** Creates a sweep from a whole request body (`specs`, or `base` with `points`/`grid`); returns its id and job ids. */
  createSweep(request: SweepRequestInput, options?: SubmitOptions): Promise<SweepCreated>;
  /** A sweep's counts and state, and one page of its elements. */
  getSweep(id: string, options?: SweepPageOptions): Promise<SweepDetail>;
  /**
   * Each element once as it reaches a final state (those already final first); ends when the sweep
   * is no longer active. Rides out gateway restarts like `wait`.
   * @example for await (const done of client.sweepProgress(id)) console.log(done.index, done.state);
   */
  sweepProgress(id: string, options?: SweepProgressOptions): AsyncGenerator<SweepElement>;
  /** Every element's final state, exit code and result, in element order (JSON lines, parsed as they arrive). */
  sweepResults(id: string, options?: { signal?: AbortSignal }): AsyncGenerator<SweepResultLine>;
  /** Cancels every live element of a sweep (idempotent); returns the sweep as it is now. */
  cancelSweep(id: string, options?: { signal?: AbortSignal }): Promise<Sweep>;
  /** Your sweeps, newest first, across pages. */
  listSweeps(options?: ListSweepsOptions): AsyncGenerator<Sweep>;
  /**
   * Uploads a local file path, bytes, a Blob or a stream; answers `{ file, path? }` to put in a
   * job's `inputs`. Large files go in parts, and a re-run sends only the parts not yet there.
   * @example await client.submit({ name: "t", command: ["wc", "-l", "train.csv"], inputs: [await client.upload("train.csv")] });
   */
  upload(source: string, options?: UploadOptions): Promise<Required<UploadedFile>>;
  upload(source: UploadSource, options: UploadOptions & { path: string }): Promise<Required<UploadedFile>>;
  upload(source: UploadSource, options?: UploadOptions): Promise<UploadedFile>;
  /** Users, tokens, clusters and grants (admin token). */
  readonly admin: AdminApi;
};

/**
 * Creates a client for one gateway and token.
 * @example
 * import { createClient } from "./client/index.ts";
 * const client = createClient({ baseUrl: "http://127.0.0.1:8080", token: process.env.SLURMGATE_TOKEN });
 * const job = await client.submit({ name: "hello", command: ["echo", "hi"], resources: { time: "5m" } });
 * const done = await client.wait(job.id, { timeout: 10 * 60_000 });
 * for await (const text of client.logs(done.id)) console.log(text);
 */
export function createClient(options: ClientOptions): SlurmgateClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const fetchImpl: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const policy = resolveRetry(options.retry);
  const transport = createTransport(fetchImpl, policy);
  const { token } = options;
  const raw = createFetchClient<paths>({
    baseUrl,
    fetch:
      typeof token === "function"
        ? async (request) => {
            request.headers.set("authorization", `Bearer ${await token()}`);
            return transport(request);
          }
        : transport,
    headers: {
      accept: "application/json, application/problem+json",
      ...(token && typeof token === "string" ? { authorization: `Bearer ${token}` } : {}),
      ...options.headers,
    },
  });

  const submit: SlurmgateClient["submit"] = (spec, submitOptions = {}) =>
    unwrap(
      raw.POST("/v1/jobs", {
        params: { header: { "idempotency-key": submitOptions.idempotencyKey ?? globalThis.crypto.randomUUID() } },
        // The generated body type marks defaulted fields required; the gateway fills them in.
        body: spec as JobSpec,
        signal: submitOptions.signal,
      }),
      shapes.job,
    );
  const wait: SlurmgateClient["wait"] = (id, waitOptions) => waitForJob(raw, id, waitOptions, policy);
  // Uploads are not JSON: requests of their own, with the same token, headers and retries.
  const send = async (request: Request) => {
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      request.headers.set(name, value);
    }
    const bearer = typeof token === "function" ? await token() : token;
    if (bearer) {
      request.headers.set("authorization", `Bearer ${bearer}`);
    }
    return transport(request);
  };

  return {
    baseUrl,
    raw,
    submit,
    preflight: (spec, o = {}) =>
      unwrap(
        raw.POST("/v1/jobs/preflight", {
          body: spec as JobSpec,
          params: { query: { estimate: o.estimate === false ? "false" : "true" } },
          signal: o.signal,
        }),
        shapes.preflight,
      ) as Promise<Preflight>,
    get: (id, o = {}) => unwrap(raw.GET("/v1/jobs/{id}", { params: { path: { id } }, signal: o.signal }), shapes.job),
    list: (filter) => listJobs(raw, filter),
    listPage: (filter) => listPage(raw, filter),
    cancel: (id, o = {}) =>
      unwrap(raw.POST("/v1/jobs/{id}/cancel", { params: { path: { id } }, signal: o.signal }), shapes.job),
    tasks: (id, o = {}) =>
      unwrap(raw.GET("/v1/jobs/{id}/tasks", { params: { path: { id } }, signal: o.signal }), shapes.tasks),
    script: (id, o = {}) =>
      unwrap(
        raw.GET("/v1/jobs/{id}/script", {
          params: { path: { id } },
          headers: { accept: "text/plain" },
          parseAs: "text",
          signal: o.signal,
        }),
        shapes.text,
      ),
    browse: (id, path, o) => browseDir(raw, id, path, o),
    head: (id, path, o) => readEnd(raw, id, path, "head", o),
    tail: (id, path, o) => readEnd(raw, id, path, "tail", o),
    events: (id, o) => fetchEvents(raw, id, o),
    wait,
    watch: (id, o = {}) => watchJob(raw, id, o, policy),
    feed: (o = {}) => followFeed(raw, o, policy),
    logs: (id, o) => followLogs(raw, id, o, policy),
    logChunk: (id, o) => readLogChunk(raw, id, o),
    listFiles: (id, o = {}) => listFiles(raw, id, o),
    download: (id, path, dest, o = {}) => downloadFiles(raw, id, path, dest, o),
    clusters: async () => (await unwrap(raw.GET("/v1/clusters"), shapes.items)).items,
    me: () => unwrap(raw.GET("/v1/me"), shapes.me),
    createAgentToken: (input) => unwrap(raw.POST("/v1/agent-tokens", { body: { label: "", ...input } }), shapes.object),
    sweep: (input, o) => runSweep({ raw, policy }, input, o),
    createSweep: (request, o) => createSweep(raw, request, o),
    getSweep: (id, o) => getSweep(raw, id, o),
    sweepProgress: (id, o) => followSweep(raw, id, o, policy),
    sweepResults: (id, o) => sweepResults(raw, id, o),
    cancelSweep: (id, o) => cancelSweep(raw, id, o),
    listSweeps: (o) => listSweeps(raw, o),
    upload: ((source: UploadSource, o?: UploadOptions) =>
      uploadFile(send, baseUrl, source, o)) as SlurmgateClient["upload"],
    ...createWebhookApi(raw),
    admin: createAdminApi(raw),
  };
}
