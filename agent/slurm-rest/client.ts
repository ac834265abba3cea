/**
 * A small HTTP client for slurmrestd over a unix socket (`unix:/path.sock`) or TCP (`http://host:port`).
 * Bodies go with a Content-Length (22.05 mishandles chunked bodies), connections are kept alive
 * (one connect per request would halve the submission rate), and every failure to get a complete
 * JSON answer is a {@link RestTransportError}: the request may or may not have been acted on.
 */
import { Agent, type IncomingMessage, request } from "node:http";

/** Where the daemon listens, as configured. */
export type RestTarget = { socketPath: string } | { host: string; port: number };

/** JWT credentials (`rest_auth/jwt`); local auth sends none. */
export type RestAuth = { user: string; token: string };

/** A complete answer: the HTTP status and the parsed JSON body. */
export type RestResponse = { status: number; body: unknown };

/** Why no answer came: the daemon did not answer, answered too late, or answered with something that is not JSON. */
export class RestTransportError extends Error {
  readonly kind: "unreachable" | "timeout" | "bad_response";
  constructor(kind: RestTransportError["kind"], message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Bigger than any queue listing we expect (about 3.5 KiB per job in v0.0.38), small enough to hold. */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/**
 * Parses SLURMGATE_SLURMRESTD: `unix:/abs/path.sock` or `http://host:port`.
 * @example parseRestTarget("unix:/run/slurmrestd.sock") // => { socketPath: "/run/slurmrestd.sock" }
 */
export function parseRestTarget(value: string): RestTarget {
  if (value.startsWith("unix:")) {
    const socketPath = value.slice("unix:".length);
    if (!socketPath.startsWith("/")) {
      throw new Error("a unix socket needs an absolute path: unix:/run/slurmrestd.sock");
    }
    return { socketPath };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error("unix:/path.sock or http://host:port");
  }
  if (url.protocol !== "http:" || url.pathname !== "/" || url.search || url.username) {
    throw new Error("unix:/path.sock or http://host:port (no path, no credentials)");
  }
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80) };
}

export type RestClient = {
  request(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<RestResponse>;
  close(): void;
};

export function createRestClient(options: {
  target: RestTarget;
  auth?: () => RestAuth | null;
  timeoutMs: number;
  maxBytes?: number;
}): RestClient {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const maxBytes = options.maxBytes ?? MAX_RESPONSE_BYTES;
  return {
    request(method, path, body) {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const auth = options.auth?.() ?? null;
      const headers: Record<string, string> = { Accept: "application/json" };
      if (payload) {
        headers["Content-Type"] = "application/json";
        headers["Content-Length"] = String(payload.length);
      }
      if (auth) {
        headers["X-SLURM-USER-NAME"] = auth.user;
        headers["X-SLURM-USER-TOKEN"] = auth.token;
      }
      return new Promise<RestResponse>((resolve, reject) => {
        let settled = false;
        const fail = (err: RestTransportError) => {
          if (!settled) {
            settled = true;
            clearTimeout(deadline);
            req.destroy();
            reject(err);
          }
        };
        const req = request(
          { ...options.target, agent, method, path, headers, timeout: options.timeoutMs },
          (res: IncomingMessage) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on("data", (chunk: Buffer) => {
              size += chunk.length;
              if (size > maxBytes) {
                fail(new RestTransportError("bad_response", `slurmrestd answered more than ${maxBytes} bytes`));
                return;
              }
              chunks.push(chunk);
            });
            res.on("error", (err) => fail(new RestTransportError("unreachable", `slurmrestd: ${err.message}`)));
            res.on("aborted", () => fail(new RestTransportError("unreachable", "slurmrestd closed the connection")));
            res.on("end", () => {
              if (settled) {
                return;
              }
              if (res.statusCode === 304) {
                // "Not modified" (GET /jobs?update_time=…) has no body by definition.
                settled = true;
                clearTimeout(deadline);
                resolve({ status: 304, body: null });
                return;
              }
              const text = Buffer.concat(chunks).toString("utf8");
              let parsed: unknown;
              try {
                parsed = JSON.parse(text);
              } catch {
                fail(
                  new RestTransportError(
                    "bad_response",
                    `slurmrestd answered HTTP ${res.statusCode} without JSON: ${JSON.stringify(text.slice(0, 200))}`,
                  ),
                );
                return;
              }
              settled = true;
              clearTimeout(deadline);
              resolve({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        // The socket timeout only sees idleness; a whole-request deadline bounds a slow trickle too.
        const deadline = setTimeout(
          () => fail(new RestTransportError("timeout", `slurmrestd did not answer within ${options.timeoutMs} ms`)),
          options.timeoutMs,
        );
        req.on("timeout", () =>
          fail(new RestTransportError("timeout", `slurmrestd did not answer within ${options.timeoutMs} ms`)),
        );
        req.on("error", (err) => fail(new RestTransportError("unreachable", `slurmrestd: ${err.message}`)));
        req.on("close", () => clearTimeout(deadline));
        req.end(payload);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
