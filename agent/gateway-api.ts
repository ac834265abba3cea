/**
 * The agent's view of the gateway, through the typed client generated from the OpenAPI document.
 * Every call returns a value, never throws: `{ ok: true, value }` or `{ ok: false, retryable, … }`.
 * Network failures have no status and are retryable; statuses follow the client's one rule
 * (`isRetryableStatus`: 408, 429, 502, 503, 504). A 500 is a gateway fault that repeating the same
 * request does not cure; the agent's cycle asks again next time anyway.
 */
import createFetchClient from "openapi-fetch";
import { isRetryableStatus } from "../client/errors.ts";
import type { components, paths } from "../client/generated/api.ts";
import { reportRequest } from "./report-request.ts";

const utf8 = new TextEncoder();

export type Lease = components["schemas"]["Lease"];
export type LeaseResponse = components["schemas"]["LeaseResponse"];
export type Report = components["schemas"]["Report"];
export type ReportOutcome = components["schemas"]["ReportOutcome"];
export type Inventory = components["schemas"]["Inventory"];
export type Problem = components["schemas"]["Problem"];
export type ClusterPolicy = components["schemas"]["ClusterPolicy"];
export type AgentAsk = components["schemas"]["AgentAsk"];
export type AskAnswer = components["schemas"]["AskAnswer"];

export type ApiResult<T> =
  | { ok: true; value: T }
  | { ok: false; status?: number; problem?: Problem; message: string; retryable: boolean };

export type GatewayApi = {
  me(): Promise<ApiResult<{ kind: string; cluster: string | null; user: string | null; serverTime: string }>>;
  lease(
    body: { agentId: string; max: number; wait: number; holding: string[] },
    signal?: AbortSignal,
  ): Promise<ApiResult<LeaseResponse>>;
  report(agentId: string, reports: Report[]): Promise<ApiResult<ReportOutcome[]>>;
  inventory(inventory: Inventory): Promise<ApiResult<{ serverTime: string }>>;
  /** Says this agent is stopping: its cluster shows down at once unless another agent is alive. */
  goodbye(agentId: string): Promise<ApiResult<{ stoppedAt: string | null; clusterAlive: boolean }>>;
  cluster(): Promise<ApiResult<ClusterPolicy>>;
  /** Answers an ask a lease call handed this agent. */
  answer(id: string, agentId: string, answer: AskAnswer): Promise<ApiResult<null>>;
  /**
   * The bytes of an input (`sha256:…`) of a job this agent holds, as they arrive: an input may be
   * gigabytes. The caller verifies the hash. A status (404 included) comes back as a result; a
   * connection dropped mid-body makes the iteration throw {@link DownloadCut}.
   */
  file(ref: string, agentId: string): Promise<ApiResult<AsyncIterable<Uint8Array>>>;
  /**
   * Streams one output file of a job, its sha256 after the bytes; the gateway hashes what arrives
   * and refuses it when the two differ. Abandoned only under the idle rule ({@link UPLOAD_IDLE_MS}).
   */
  uploadOutput?(upload: OutputUpload): Promise<ApiResult<null>>;
};

export type OutputUpload = {
  jobId: string;
  epoch: number;
  path: string;
  size: number;
  /** The file's bytes, read once: the body is hashed as it is read, never read a second time to hash it. */
  body: AsyncIterable<Uint8Array>;
  /**
   * The sha256 (hex) of what `body` yielded, asked for once it has ended and sent after the bytes:
   * the gateway lists the file only when its own hash of what arrived is this one.
   */
  sha256(): string;
  /** The agent stopping: the upload breaks off at once, whatever the idle rule. */
  signal?: AbortSignal;
};

/**
 * The idle rule of output uploads: one is aborted only when no bytes have moved (read from the
 * file or taken by the connection) for this long, whatever its size or the link's speed. Over SSH
 * on a loaded machine an output moves at 0.3 MiB/s (bench/RESULTS.md "transfer"), which any fixed
 * per-MiB deadline either cuts off or waits far too long for when the link is dead.
 */
export const UPLOAD_IDLE_MS = 60_000;
/** The overall cap of one output upload, however steadily it moves: 2 GiB at 0.1 MiB/s fits. */
export const UPLOAD_MAX_MS = 6 * 3_600_000;
/** The slices the connection is handed, so that "bytes moved" is seen at this grain, not per 8 MiB read. */
const UPLOAD_SLICE_BYTES = 64 * 1024;
/** The agent's sha256 that ends an upload's body: 64 lowercase hex digits. */
const TRAILER_BYTES = 64;

/** The body of a download stopped before its end: the bytes so far are not the file. */
export class DownloadCut extends Error {}

/**
 * A response body as an async iterable that ends only when all `expected` bytes came (when known).
 * Returning from it early, even before the first chunk, lets go of the connection.
 */
function bodyOf(response: Response, expected: number | null): AsyncIterable<Uint8Array> {
  const chunks = readBody(response, expected);
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => chunks.next(),
      async return(value?: unknown) {
        // Not yet read: the stream is unlocked and cancels; being read: the reader's finally does it.
        await response.body?.cancel().catch(() => {});
        return chunks.return(value);
      },
      throw: (err?: unknown) => chunks.throw(err),
    }),
  };
}

async function* readBody(response: Response, expected: number | null): AsyncGenerator<Uint8Array> {
  if (!response.body) {
    if (expected) {
      throw new DownloadCut(`the body is empty, ${expected} bytes were announced`);
    }
    return;
  }
  const reader = response.body.getReader();
  let got = 0;
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (err) {
        throw new DownloadCut(`the download broke off after ${got} bytes: ${(err as Error).message}`);
      }
      if (next.done) {
        break;
      }
      got += next.value.byteLength;
      yield next.value;
    }
  } finally {
    // A consumer that stops early (or failed) lets go of the connection.
    await reader.cancel().catch(() => {});
  }
  if (expected !== null && got !== expected) {
    throw new DownloadCut(`the download ended after ${got} of ${expected} bytes`);
  }
}

async function call<T>(run: () => Promise<{ data?: T; error?: unknown; response: Response }>): Promise<ApiResult<T>> {
  try {
    const { data, error, response } = await run();
    if (data !== undefined && response.ok) {
      return { ok: true, value: data };
    }
    const problem = (error ?? undefined) as Problem | undefined;
    const status = response.status;
    return {
      ok: false,
      status,
      problem,
      message: problem?.detail ?? problem?.title ?? `HTTP ${status}`,
      retryable: isRetryableStatus(status),
    };
  } catch (err) {
    return { ok: false, message: `network: ${(err as Error).message}`, retryable: true };
  }
}

/**
 * An upload's body as the connection pulls it: the file's bytes in slices, then the agent's sha256.
 * `moved` is called whenever bytes move (a chunk read from the source, a slice taken by fetch).
 */
function uploadStream(upload: OutputUpload, moved: () => void): ReadableStream<Uint8Array> {
  const it = upload.body[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  let ended = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        moved();
        if (pending.byteLength === 0 && !ended) {
          const next = await it.next();
          moved();
          if (next.done) {
            ended = true;
            controller.enqueue(Buffer.from(upload.sha256(), "ascii"));
            controller.close();
            return;
          }
          pending = next.value;
        }
        const slice = pending.subarray(0, UPLOAD_SLICE_BYTES);
        pending = pending.subarray(slice.byteLength);
        controller.enqueue(slice);
      },
      async cancel() {
        await it.return?.();
      },
    },
    // Pulled only when fetch asks: a slice taken is a slice the connection accepted.
    { highWaterMark: 0 },
  );
}

export function createGatewayApi(options: {
  baseUrl: string;
  token: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** Tests only: the idle rule and the overall cap of output uploads (default UPLOAD_IDLE_MS, UPLOAD_MAX_MS). */
  uploadIdleMs?: number;
  uploadMaxMs?: number;
}): GatewayApi {
  const client = createFetchClient<paths>({
    baseUrl: options.baseUrl.replace(/\/$/, ""),
    headers: { authorization: `Bearer ${options.token}`, "user-agent": "slurmgate-agent" },
    fetch: options.fetch,
    // Bytes, not a string: fetch re-scans a string body for lone surrogates before encoding it, and
    // a report request carries scripts and base64 log chunks (megabytes).
    bodySerializer: (body: unknown) => utf8.encode(JSON.stringify(body)),
  });
  const timeout = (extraMs = 0) => AbortSignal.timeout((options.timeoutMs ?? 30_000) + extraMs);
  return {
    me: () => call(() => client.GET("/v1/me", { signal: timeout() })),
    lease: (body, signal) =>
      call(() =>
        client.POST("/v1/agent/lease", {
          body,
          signal: signal ? AbortSignal.any([signal, timeout(body.wait * 1000)]) : timeout(body.wait * 1000),
        }),
      ),
    report: async (agentId, reports) => {
      const send = (body: components["schemas"]["ReportBatch"]) =>
        call(() => client.POST("/v1/agent/reports", { body, signal: timeout() }));
      const body = reportRequest(agentId, reports);
      let result = await send(body);
      if (!result.ok && result.status === 422 && body.scriptBodies) {
        // A gateway from before shared script bodies refuses the field (strict bodies): the same
        // reports with whole scripts, as it knows them, so agents may be upgraded before gateways.
        result = await send({ agentId, reports });
      }
      return result.ok ? { ok: true, value: result.value.outcomes } : result;
    },
    inventory: async (inventory) => {
      const result = await call(() => client.PUT("/v1/agent/inventory", { body: inventory, signal: timeout() }));
      return result.ok ? { ok: true, value: { serverTime: result.value.serverTime } } : result;
    },
    // Short: a stopping agent should not hang on an unreachable gateway (it shows down after the
    // liveness window anyway).
    goodbye: (agentId) =>
      call(() => client.POST("/v1/agent/goodbye", { body: { agentId }, signal: AbortSignal.timeout(5_000) })),
    cluster: () => call(() => client.GET("/v1/agent/cluster", { signal: timeout() })),
    answer: async (id, agentId, answer) => {
      const result = await call(async () => {
        const sent = await client.POST("/v1/agent/asks/{id}/answer", {
          params: { path: { id } },
          body: { agentId, answer },
          signal: timeout(),
        });
        return { ...sent, data: sent.response.ok ? null : undefined };
      });
      return result;
    },
    // Raw fetch: the typed client would buffer the body, and an output may be gigabytes.
    uploadOutput: async (upload) => {
      const query = new URLSearchParams({ epoch: String(upload.epoch), path: upload.path, size: String(upload.size) });
      const url = `${options.baseUrl.replace(/\/$/, "")}/v1/agent/jobs/${encodeURIComponent(upload.jobId)}/outputs?${query}`;
      const idleMs = options.uploadIdleMs ?? UPLOAD_IDLE_MS;
      const idle = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let over = false;
      const moved = () => {
        // A read still under way when the upload ended (aborted) must not arm a timer that holds the process.
        if (over) {
          return;
        }
        clearTimeout(timer);
        timer = setTimeout(
          () => idle.abort(new Error(`no bytes moved for ${idleMs / 1000} s; the upload was abandoned`)),
          idleMs,
        );
      };
      moved();
      try {
        return await call(async () => {
          const response = await (options.fetch ?? fetch)(url, {
            method: "PUT",
            headers: {
              authorization: `Bearer ${options.token}`,
              "user-agent": "slurmgate-agent",
              "content-type": "application/octet-stream",
              "content-length": String(upload.size + TRAILER_BYTES),
            },
            body: uploadStream(upload, moved),
            duplex: "half",
            signal: AbortSignal.any([
              idle.signal,
              AbortSignal.timeout(options.uploadMaxMs ?? UPLOAD_MAX_MS),
              ...(upload.signal ? [upload.signal] : []),
            ]),
          } as RequestInit);
          const error = response.ok ? undefined : await response.json().catch(() => undefined);
          return { data: response.ok ? null : undefined, error, response };
        });
      } finally {
        over = true;
        clearTimeout(timer);
      }
    },
    // Raw fetch, as for outputs: the typed client would buffer the body. Minutes, not seconds.
    file: (ref, agentId) => {
      const url = `${options.baseUrl.replace(/\/$/, "")}/v1/agent/files/${encodeURIComponent(ref)}?${new URLSearchParams({ agentId })}`;
      return call(async () => {
        const response = await (options.fetch ?? fetch)(url, {
          headers: { authorization: `Bearer ${options.token}`, "user-agent": "slurmgate-agent" },
          signal: timeout(30 * 60_000),
        });
        if (!response.ok) {
          const error = await response.json().catch(() => undefined);
          return { data: undefined, error, response };
        }
        const length = response.headers.get("content-length");
        const expected = length !== null && /^\d+$/.test(length) ? Number(length) : null;
        return { data: bodyOf(response, expected), response };
      });
    },
  };
}
