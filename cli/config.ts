/**
 * How the verbs find their gateway and credentials: SLURMGATE_URL / SLURMGATE_TOKEN override the
 * login file (`cli/config-file.ts`), whose token may be a slurmgate token or an OIDC sign-in that is
 * refreshed as it nears expiry (`cli/oidc-session.ts`).
 */
import { createClient, type SlurmgateClient } from "../client/index.ts";
import { gatewayUrl } from "./args.ts";
import { configPath, readConfig } from "./config-file.ts";
import { CliError } from "./errors.ts";
import { type Io, interactive } from "./io.ts";
import { oidcTokenProvider } from "./oidc-session.ts";

export { configPath, type OidcCredentials, readConfig, type StoredConfig, writeConfig } from "./config-file.ts";

export type Connection = { url: string; token: string | (() => Promise<string>) };

/** The gateway and token to use: environment first, then the login file (a token, or an OIDC sign-in). */
export function connection(env: Io["env"]): Connection {
  const stored = readConfig(env);
  const url = env.SLURMGATE_URL || stored.url;
  const token = env.SLURMGATE_TOKEN || stored.token || (stored.oidc && oidcTokenProvider(env, stored.oidc));
  if (!url || !token) {
    throw new CliError(
      "not logged in: run `slurmgate login --url URL --token TOKEN` (or --oidc ISSUER) or set SLURMGATE_URL and SLURMGATE_TOKEN",
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
