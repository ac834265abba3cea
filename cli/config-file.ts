/**
 * The login file, `$XDG_CONFIG_HOME/slurmgate/config.json` (or `~/.config/slurmgate/config.json`):
 * the gateway URL and either a slurmgate token or an OIDC sign-in. Mode 0600, replaced atomically.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CliError } from "./errors.ts";
import type { Io } from "./io.ts";

/** What `slurmgate login --oidc` keeps: enough to refresh without discovery, and to say who you are. */
export type OidcCredentials = {
  issuer: string;
  clientId: string;
  tokenEndpoint: string;
  revocationEndpoint?: string;
  /** Spent on every refresh: the provider rotates it. */
  refreshToken?: string;
  /** The bearer sent to the gateway (its audience is the client id). */
  idToken: string;
  /** ISO time: the ID token's `exp`. */
  expiresAt: string;
  subject: string;
  username?: string;
};

const REQUIRED = ["issuer", "clientId", "tokenEndpoint", "idToken", "expiresAt", "subject"] as const;
const OPTIONAL = ["revocationEndpoint", "refreshToken", "username"] as const;

/**
 * The stored sign-in, or undefined when any field is missing or of the wrong type. Checked by hand:
 * zod would add its import time to every CLI start.
 */
function oidcCredentials(value: unknown): OidcCredentials | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const v = value as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const key of REQUIRED) {
    if (typeof v[key] !== "string" || (key !== "subject" && v[key] === "")) {
      return undefined;
    }
    out[key] = v[key] as string;
  }
  for (const key of OPTIONAL) {
    if (v[key] !== undefined && typeof v[key] !== "string") {
      return undefined;
    }
    if (v[key] !== undefined) {
      out[key] = v[key] as string;
    }
  }
  return Number.isNaN(Date.parse(out.expiresAt ?? "")) ? undefined : (out as OidcCredentials);
}

export type StoredConfig = { url?: string; token?: string; oidc?: OidcCredentials };

export function configPath(env: Io["env"]): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "slurmgate", "config.json");
}

export function readConfig(env: Io["env"]): StoredConfig {
  const path = configPath(env);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON; run slurmgate login again`);
  }
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const config: StoredConfig = { url: str(parsed?.url), token: str(parsed?.token) };
  if (parsed?.oidc !== undefined) {
    const oidc = oidcCredentials(parsed.oidc);
    if (!oidc) {
      throw new CliError(`the sign-in stored in ${path} is damaged; run slurmgate login --oidc again`);
    }
    config.oidc = oidc;
  }
  return config;
}

/**
 * Writes the file readable by its owner only (0600, directory 0700), atomically: a reader (another
 * slurmgate refreshing at the same moment) sees the old file or the new one, never half of either.
 */
export function writeConfig(env: Io["env"], config: StoredConfig): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(config, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return path;
}
