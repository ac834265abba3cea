/**
 * Keeps an OIDC sign-in fresh: the ID token in the login file is sent as is until it is within 60 s
 * of expiring; then one process at a time (a lock file beside the config) re-reads the file, and
 * refreshes only if no other process has already done so. The provider rotates refresh tokens and
 * treats a spent one presented again as theft (it revokes the whole sign-in), so two slurmgate
 * commands must never both present the same refresh token.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { OidcError, refreshTokens } from "../client/index.ts";
import { sleep } from "../client/retry.ts";
import { configPath, type OidcCredentials, readConfig, writeConfig } from "./config-file.ts";
import { CliError } from "./errors.ts";
import type { Io } from "./io.ts";

/** Refresh when the ID token has less than this left: a request must not arrive with a dead token. */
export const REFRESH_MARGIN_MS = 60_000;
/** A lock older than this belongs to a process that died mid-refresh (a refresh times out in 10 s). */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 40_000;

/** Says how to get a working sign-in back. */
export function loginAgain(issuer: string, why: string): CliError {
  return new CliError(`${why}; run slurmgate login --oidc ${issuer} again`);
}

/**
 * The `token` option of the client for a stored OIDC sign-in: the current ID token, refreshed first
 * when it is about to expire.
 * @example createClient({ baseUrl, token: oidcTokenProvider(io.env, stored.oidc) })
 */
export function oidcTokenProvider(env: Io["env"], initial: OidcCredentials): () => Promise<string> {
  let current = initial;
  return async () => {
    if (!expiring(current)) {
      return current.idToken;
    }
    current = await withConfigLock(configPath(env), () => refreshStored(env, current));
    return current.idToken;
  };
}

const expiring = (c: OidcCredentials) => Date.parse(c.expiresAt) - Date.now() < REFRESH_MARGIN_MS;

/** Under the lock: take what the file holds now; refresh only if that is still about to expire. */
async function refreshStored(env: Io["env"], seen: OidcCredentials): Promise<OidcCredentials> {
  const stored = readConfig(env);
  const now = stored.oidc;
  if (!now || now.issuer !== seen.issuer) {
    throw new CliError("the OIDC sign-in was removed or replaced meanwhile; run slurmgate login again");
  }
  if (!expiring(now)) {
    return now;
  }
  if (!now.refreshToken) {
    throw loginAgain(now.issuer, `the sign-in at ${now.issuer} expired and has no refresh token`);
  }
  let tokens: Awaited<ReturnType<typeof refreshTokens>>;
  try {
    tokens = await refreshTokens({
      issuer: now.issuer,
      tokenEndpoint: now.tokenEndpoint,
      clientId: now.clientId,
      refreshToken: now.refreshToken,
    });
  } catch (err) {
    if (err instanceof OidcError && err.retryable) {
      throw new CliError(
        `cannot refresh the sign-in at ${now.issuer} (${err.message}); the stored sign-in is kept, try again`,
      );
    }
    if (err instanceof OidcError) {
      throw loginAgain(now.issuer, `the sign-in at ${now.issuer} can no longer be refreshed (${err.message})`);
    }
    throw err;
  }
  const next: OidcCredentials = {
    ...now,
    idToken: tokens.idToken,
    // Rotation: the old refresh token is spent now; a provider that does not rotate sends none.
    refreshToken: tokens.refreshToken ?? now.refreshToken,
    expiresAt: tokens.expiresAt,
    subject: tokens.subject,
    username: tokens.username ?? now.username,
  };
  writeConfig(env, { ...stored, oidc: next });
  return next;
}

/**
 * Runs `fn` holding `<config>.lock` (created exclusively). A lock left by a dead process is taken
 * over: at once when its pid is gone on this host, else once it is older than STALE_LOCK_MS.
 */
export async function withConfigLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = openSync(lock, "wx", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw err;
      }
    }
    if (fd !== undefined) {
      try {
        writeSync(fd, `${hostname()} ${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      try {
        return await fn();
      } finally {
        rmSync(lock, { force: true });
      }
    }
    const state = lockState(lock);
    if (state === "gone") {
      continue;
    }
    if (state === "abandoned") {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new CliError(`another slurmgate has held ${lock} for too long; remove it if no slurmgate is running`);
    }
    await sleep(25 + Math.random() * 50);
  }
}

function lockState(lock: string): "held" | "abandoned" | "gone" {
  try {
    if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) {
      return "abandoned";
    }
    const [host, pid] = readFileSync(lock, "utf8").trim().split(" ");
    if (host !== hostname() || !pid || !/^\d+$/.test(pid)) {
      return "held";
    }
    process.kill(Number(pid), 0);
    return "held";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "gone" : code === "ESRCH" ? "abandoned" : "held";
  }
}
