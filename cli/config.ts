/**
 * Where `slurmgate login` keeps the gateway URL and token, and how the other verbs find them:
 * SLURMGATE_URL / SLURMGATE_TOKEN override the file, which lives at
 * `$XDG_CONFIG_HOME/slurmgate/config.json` (or `~/.config/slurmgate/config.json`), mode 0600.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { createClient, type SlurmgateClient } from "../client/index.ts";
import { gatewayUrl } from "./args.ts";
import { CliError } from "./errors.ts";
import { type Io, interactive } from "./io.ts";

export type StoredConfig = { url: string; token: string };

export function configPath(env: Io["env"]): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "slurmgate", "config.json");
}

export function readConfig(env: Io["env"]): Partial<StoredConfig> {
  const path = configPath(env);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as Partial<StoredConfig>;
    return { url: parsed.url, token: parsed.token };
  } catch {
    throw new CliError(`${path} is not valid JSON; run slurmgate login again`);
  }
}

/** Writes the file readable by its owner only (0600, directory 0700), atomically. */
export function writeConfig(env: Io["env"], config: StoredConfig): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return path;
}

/** The gateway and token to use: environment first, then the login file. */
export function connection(env: Io["env"]): StoredConfig {
  const stored = readConfig(env);
  const url = env.SLURMGATE_URL || stored.url;
  const token = env.SLURMGATE_TOKEN || stored.token;
  if (!url || !token) {
    throw new CliError(
      "not logged in: run `slurmgate login --url URL --token TOKEN` or set SLURMGATE_URL and SLURMGATE_TOKEN",
    );
  }
  return { url: gatewayUrl(env.SLURMGATE_URL ? "SLURMGATE_URL" : `the URL in ${configPath(env)}`, url), token };
}

/**
 * A client for the configured gateway. `wait`, `logs -f` and `submit --wait/--follow` ride out a gateway
 * outage for SLURMGATE_OUTAGE_SECONDS (default 300), saying so once per outage on a terminal.
 */
export function clientFor(io: Io): SlurmgateClient {
  const { url, token } = connection(io.env);
  return createClient({
    baseUrl: url,
    token,
    retry: {
      outageMs: outageSeconds(io.env) * 1000,
      onOutage: ({ downForMs, error }) => {
        if (downForMs === 0 && interactive(io)) {
          io.stderr.write(`\r\x1b[2Kgateway unreachable, retrying… (${error.message.replace(/\s*\n\s*/g, "; ")})\n`);
        }
      },
    },
  });
}

function outageSeconds(env: Io["env"]): number {
  const text = env.SLURMGATE_OUTAGE_SECONDS;
  if (text === undefined || text === "") {
    return 300;
  }
  if (!/^\d{1,7}$/.test(text.trim())) {
    throw new CliError(`SLURMGATE_OUTAGE_SECONDS must be a whole number of seconds, not '${text}'`);
  }
  return Number(text.trim());
}
