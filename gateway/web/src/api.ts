/**
 * The page's only way to the gateway: same-origin fetch with the signed-in token, problems turned
 * into readable errors, and event streams read with fetch (EventSource cannot send a token).
 */
import { readEventStream } from "../../../client/sse.ts";
import { forget, freshToken, SignInExpired, signedInWithToken, TOKEN_KEY } from "./oidc.ts";

/** Fired on window when the gateway stops accepting the token; `detail` says why. */
export const SIGNED_OUT = "slurmgate:signed-out";

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  signIn: signedInWithToken,
  signOut: forget,
};

/** A refusal or failure, worded for a person: the problem's title and detail, and its field. */
export class ApiError extends Error {
  readonly status: number;
  readonly field: string | undefined;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function problemOf(res: Response): Promise<ApiError> {
  let body: { title?: string; detail?: string; field?: string } = {};
  try {
    body = await res.json();
  } catch {
    // not a problem document: the status says enough
  }
  const what = [body.title, body.detail].filter(Boolean).join(": ") || res.statusText || "request failed";
  return new ApiError(res.status, `${res.status} ${what}`, body.field);
}

/** The bearer for the next request; a lapsed sign-in signs the page out, saying why. */
async function bearer(): Promise<string | null> {
  try {
    return await freshToken();
  } catch (err) {
    if (!(err instanceof SignInExpired)) {
      throw err;
    }
    session.signOut();
    dispatchEvent(new CustomEvent(SIGNED_OUT, { detail: err.message }));
    throw new ApiError(401, `401 Unauthorized: ${err.message}`);
  }
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = await bearer();
  if (token) {
    headers.authorization = `Bearer ${token}`;
  }
  if (init.body !== undefined) {
    headers["content-type"] = "application/json";
  }
  if (init.method === "POST" && path === "/v1/jobs") {
    headers["idempotency-key"] = crypto.randomUUID();
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? "GET",
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: init.signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") {
      throw err;
    }
    throw new ApiError(0, `the gateway could not be reached (${(err as Error).message})`);
  }
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401) {
      // The token was revoked or expired while the page was open: back to sign-in, saying why.
      session.signOut();
      dispatchEvent(new CustomEvent(SIGNED_OUT, { detail: problem.message }));
    }
    throw problem;
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export const query = (params: Record<string, string | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v) {
      q.set(k, v);
    }
  }
  const s = q.toString();
  return s ? `?${s}` : "";
};

/**
 * Follows an event stream until `signal` aborts, reconnecting with Last-Event-ID so nothing is lost
 * or repeated across a dropped connection or the gateway's stream time limit.
 */
export async function follow(
  path: string,
  onMessage: (event: string, data: unknown, id: string | undefined) => void,
  signal: AbortSignal,
  onError?: (err: ApiError) => void,
): Promise<void> {
  let lastId: string | undefined;
  while (!signal.aborted) {
    let retryMs = 2_000;
    try {
      let token: string | null;
      try {
        token = await bearer();
      } catch (err) {
        onError?.(err as ApiError);
        return;
      }
      const headers: Record<string, string> = { accept: "text/event-stream", authorization: `Bearer ${token}` };
      if (lastId) {
        headers["last-event-id"] = lastId;
      }
      const res = await fetch(path, { headers, signal });
      if (!res.ok || !res.body) {
        const err = await problemOf(res);
        onError?.(err);
        if (res.status === 401 || res.status === 403 || res.status === 404) {
          return;
        }
      } else {
        for await (const m of readEventStream(res.body)) {
          if (m.retry !== undefined) {
            retryMs = m.retry;
          }
          if (m.id !== undefined) {
            lastId = m.id;
          }
          if (m.comment !== undefined) {
            continue;
          }
          if (m.event === "end") {
            return;
          }
          let data: unknown = m.data;
          try {
            data = JSON.parse(m.data);
          } catch {
            // a plain-text message
          }
          onMessage(m.event, data, m.id);
        }
      }
    } catch {
      if (signal.aborted) {
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}
