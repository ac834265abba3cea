/**
 * How long the Node gateway keeps an idle keep-alive connection. Node's default (5 s) is shorter
 * than most clients and proxies keep theirs, so a pooled connection is sometimes closed by the
 * gateway at the moment a client sends a request on it: the client sees ECONNRESET for a request
 * the gateway never read, and a POST cannot safely be retried. Keeping idle connections longer
 * than the usual proxy idle timeout (60 s) means the other side closes first.
 */
import type { Server } from "node:http";

export const IDLE_KEEP_ALIVE_MS = 65_000;

export function keepIdleConnections(server: unknown): void {
  const http = server as Server;
  http.keepAliveTimeout = IDLE_KEEP_ALIVE_MS;
  // Older Node versions cut a kept-alive connection whose next request's headers start after headersTimeout.
  http.headersTimeout = Math.max(http.headersTimeout, IDLE_KEEP_ALIVE_MS + 1_000);
}
