/**
 * The agent's own secret store. A job names the secrets it needs; the agent resolves them here and
 * hands them to the job in a 0600 file in the job directory that the job's wrapper reads and
 * removes. Values are never logged, rendered into the script, put on a command line or sent to the
 * gateway (DESIGN invariant 6).
 */
import { readFileSync, statSync } from "node:fs";
import { parseEnvFile } from "./config.ts";
import type { Executor } from "./executor/types.ts";
import { encodeEnvEntries } from "./render/data-files.ts";

export type SecretStore = { get(name: string): string | undefined; names(): string[] };

const ENV_PREFIX = "SLURMGATE_SECRET_";

/**
 * Secrets come from a `NAME=value` file that only its owner may read, and/or from environment
 * variables named SLURMGATE_SECRET_<NAME>.
 */
export function loadSecretStore(file: string | undefined, env: Record<string, string | undefined>): SecretStore {
  const values = new Map<string, string>();
  if (file) {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      throw new Error(`secret store ${file} has mode ${mode.toString(8)}; run: chmod 600 ${file}`);
    }
    for (const [name, value] of Object.entries(parseEnvFile(readFileSync(file, "utf8")))) {
      values.set(name, value);
    }
  }
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(ENV_PREFIX) && value !== undefined) {
      values.set(key.slice(ENV_PREFIX.length), value);
    }
  }
  return { get: (name) => values.get(name), names: () => [...values.keys()] };
}

export const SECRETS_FILE_NAME = "secrets.nul";

/**
 * Writes the requested secrets for one job (mode 0600). Returns the path, null when none were
 * asked, or the names that are missing from the store.
 */
export async function writeJobSecrets(
  executor: Executor,
  store: SecretStore,
  jobDir: string,
  names: string[],
  /** The services' own file (render/services.ts SERVICE_SECRETS_FILE) is written the same way. */
  fileName: string = SECRETS_FILE_NAME,
): Promise<{ path: string | null; missing: string[] }> {
  if (names.length === 0) {
    return { path: null, missing: [] };
  }
  const missing = names.filter((n) => store.get(n) === undefined);
  if (missing.length) {
    return { path: null, missing };
  }
  const path = `${jobDir}/${fileName}`;
  const entries = Object.fromEntries(names.map((n) => [n, store.get(n)!]));
  await executor.writeFile(path, encodeEnvEntries(entries), 0o600);
  return { path, missing: [] };
}
