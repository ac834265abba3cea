/**
 * Gateway configuration from environment variables. Only the entries (node.ts, worker.ts) pass
 * their environment here; nothing else reads process.env.
 */
import { z } from "zod";
import { ASK_TIMEOUT_SECONDS } from "../schemas/asks.ts";
import { FILE_LIMITS } from "../schemas/files.ts";
import { WEBHOOK_RETRY } from "../schemas/webhook.ts";
import { OidcIssuers } from "./auth/oidc-config.ts";

/** A variable holding JSON, checked against `schema`; a parse error names the JSON fault. */
function jsonOf<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch (error) {
        ctx.addIssue({ code: "custom", message: `not JSON: ${(error as Error).message}` });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

const intFrom = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** Why `entry` is not `*` or an origin as a browser sends it (`https://app.example.org:8443`), or undefined. */
function originFault(entry: string): string | undefined {
  if (entry === "*") {
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return `'${entry}' is not an origin like https://app.example.org (or *)`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return `'${entry}' is not an http(s) origin`;
  }
  return url.origin === entry ? undefined : `'${entry}' is not an origin as browsers send it; write ${url.origin}`;
}

export const GatewayConfig = z.object({
  PORT: intFrom(8080, 1, 65_535), // HTTP port of the Node gateway
  SLURMGATE_HOST: z.string().default("127.0.0.1"), // listen address; 0.0.0.0 to serve other machines
  SLURMGATE_DB_URL: z
    .string()
    .regex(/^(file:|libsql:|https?:|wss?:)/, "a libSQL URL: file:, libsql:, http(s): or ws(s):")
    .default("file:./data/slurmgate.db"), // embedded file by default; Turso/sqld by URL
  SLURMGATE_DB_AUTH_TOKEN: z.string().optional(), // auth token for a remote libSQL database
  SLURMGATE_BOOTSTRAP_TOKEN: z
    .string()
    .regex(/^sgk_[A-Za-z0-9_-]{32,}$/, "an admin token: sgk_ followed by at least 32 base64url characters")
    .optional(), // becomes the first admin's token while no admin exists
  SLURMGATE_LEASE_SECONDS: intFrom(120, 10, 3_600), // how long an agent holds a job between heartbeats
  SLURMGATE_AGENT_LIVENESS_SECONDS: intFrom(120, 10, 86_400), // an agent unseen for longer is not routed to
  SLURMGATE_BODY_LIMIT_BYTES: intFrom(2_097_152, 1_024, 67_108_864), // user request bodies
  SLURMGATE_AGENT_BODY_LIMIT_BYTES: intFrom(16_777_216, 1_024, 134_217_728), // agent reports carry log bytes
  SLURMGATE_RATE_LIMIT_PER_SECOND: intFrom(50, 0, 1_000_000), // per-token refill rate; 0 disables
  SLURMGATE_RATE_LIMIT_BURST: intFrom(200, 1, 1_000_000), // per-token bucket size
  SLURMGATE_MAX_QUEUED_PER_USER: intFrom(10_000, 1, 10_000_000), // live jobs one user may hold
  SLURMGATE_ESTIMATE_SECONDS: intFrom(ASK_TIMEOUT_SECONDS.default, 0, ASK_TIMEOUT_SECONDS.max), // a preflight waits this long for each agent's sbatch --test-only; 0 skips
  SLURMGATE_BROWSE_SECONDS: intFrom(ASK_TIMEOUT_SECONDS.default, 1, ASK_TIMEOUT_SECONDS.max), // a browse of a job directory waits this long for the agent
  SLURMGATE_SSE_MAX_PER_USER: intFrom(16, 1, 10_000), // event streams one user may hold open (per process)
  SLURMGATE_SSE_HEARTBEAT_SECONDS: intFrom(15, 1, 300), // comment lines that keep proxies from closing a quiet stream
  SLURMGATE_SSE_MAX_SECONDS: intFrom(900, 5, 86_400), // a stream ends after this; clients resume with Last-Event-ID
  SLURMGATE_WEBHOOK_ALLOW_PRIVATE: z
    .enum(["0", "1"])
    .default("0")
    .transform((v) => v === "1"), // 1: every webhook may target private/loopback addresses and plain http
  SLURMGATE_WEBHOOK_SECRET_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, "base64 of 32 random bytes (openssl rand -base64 32)")
    .optional(), // encrypts webhook secrets at rest (AES-256-GCM); unset: stored as is
  SLURMGATE_WEBHOOK_TIMEOUT_MS: intFrom(10_000, 100, 60_000), // one delivery attempt, connect to answer
  SLURMGATE_WEBHOOK_RETRY_BASE_MS: intFrom(WEBHOOK_RETRY.baseMs, 10, 3_600_000), // first retry's delay (doubles, capped)
  SLURMGATE_FILES_DIR: z.string().min(1).optional(), // blob directory (Node); default: files/ next to the libSQL file, else ./data/files
  SLURMGATE_FILE_MAX_BYTES: intFrom(FILE_LIMITS.fileBytes, 1, FILE_LIMITS.fileBytes), // one uploaded or composed file
  SLURMGATE_USER_FILES_BYTES: intFrom(FILE_LIMITS.userBytes, 1, FILE_LIMITS.userBytes), // bytes of uploads one user may hold
  SLURMGATE_USER_FILES_COUNT: intFrom(FILE_LIMITS.userFiles, 1, FILE_LIMITS.userFiles), // distinct uploads one user may hold
  SLURMGATE_FILES_RETENTION_SECONDS: intFrom(7 * 86_400, 60, 3_650 * 86_400), // an upload no live job uses is deleted this long after its last upload
  SLURMGATE_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  SLURMGATE_OIDC_ISSUERS: jsonOf(OidcIssuers).default([]), // trusted OpenID issuers (gateway/auth/oidc-config.ts)
  SLURMGATE_CORS_ORIGINS: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((o) => o.trim())
        .filter((o) => o !== ""),
    )
    .superRefine((origins, ctx) => {
      // Browsers send Origin serialized (lower case, no path, no trailing slash, default port left
      // out) and it is matched exactly, so anything else here would silently never match.
      for (const origin of origins) {
        const fault = originFault(origin);
        if (fault) {
          ctx.addIssue({ code: "custom", message: fault });
        }
      }
    }), // browser origins allowed to call the API; "*" for any (never with credentials)
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;

/**
 * The blob directory: SLURMGATE_FILES_DIR, else `files/` beside an embedded libSQL file, else ./data/files.
 * @example filesDir(parseGatewayConfig({ SLURMGATE_DB_URL: "file:/var/lib/sg/db.sqlite" })) === "/var/lib/sg/files"
 */
export function filesDir(config: GatewayConfig): string {
  if (config.SLURMGATE_FILES_DIR) {
    return config.SLURMGATE_FILES_DIR;
  }
  const url = config.SLURMGATE_DB_URL;
  if (url.startsWith("file:") && !url.startsWith("file::memory:")) {
    const path = url.slice("file:".length).split("?")[0] ?? "";
    const slash = path.lastIndexOf("/");
    return `${slash < 0 ? "." : path.slice(0, slash) || "/"}/files`;
  }
  return "./data/files";
}

/**
 * Parses an environment-like record. Throws an Error whose message is one line per bad variable.
 * @example parseGatewayConfig({ PORT: "9000" }).PORT === 9000
 */
export function parseGatewayConfig(source: Record<string, unknown>): GatewayConfig {
  const result = GatewayConfig.safeParse(source);
  if (result.success) {
    return result.data;
  }
  const lines = result.error.issues.map((issue) => {
    const name = issue.path.join(".");
    const value = source[name];
    const shown = name.includes("TOKEN") || value === undefined ? "" : ` (got ${JSON.stringify(value)})`;
    return `invalid ${name}: ${issue.message}${shown}`;
  });
  throw new Error(lines.join("\n"));
}
