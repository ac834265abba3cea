/**
 * The login file, `$XDG_CONFIG_HOME/slurmgate/config.json` (or `~/.config/slurmgate/config.json`):
 * the gateway URL and either a slurmgate token or an OIDC sign-in. Mode 0600, replaced atomically.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";
import { CliError } from "./errors.ts";
import type { Io } from "./io.ts";

/** What `slurmgate login --oidc` keeps: enough to refresh without discovery, and to say who you are. */
export const OidcCredentials = z.object({
  issuer: z.string().min(1),
  clientId: z.string().min(1),
  tokenEndpoint: z.string().url(),
  revocationEndpoint: z.string().url().optional(),
  /** Spent on every refresh: the provider rotates it. */
  refreshToken: z.string().min(1).optional(),
  /** The bearer sent to the gateway (its audience is the client id). */
  idToken: z.string().min(1),
  expiresAt: z.iso.datetime(),
  subject: z.string(),
  username: z.string().optional(),
});
export type OidcCredentials = z.infer<typeof OidcCredentials>;

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
    const oidc = OidcCredentials.safeParse(parsed.oidc);
    if (!oidc.success) {
      throw new CliError(`the sign-in stored in ${path} is damaged; run slurmgate login --oidc again`);
    }
    config.oidc = oidc.data;
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
