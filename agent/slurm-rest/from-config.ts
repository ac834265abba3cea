/**
 * The REST backend an agent's config asks for: its client (target, JWT from a file) and commands.
 */
import { readFileSync, statSync } from "node:fs";
import { agentAccount } from "../identity/agent-account.ts";
import type { AgentConfig } from "../config.ts";
import type { SlurmCommands } from "../slurm-commands.ts";
import { type RestAuth, type RestClient, createRestClient, parseRestTarget } from "./client.ts";
import { createRestSlurmCommands, pingRest } from "./commands.ts";

/** Why this config cannot use the REST backend; null when it can (or does not ask for it). */
export function restConfigProblem(config: AgentConfig): string | null {
  if (!config.SLURMGATE_SLURMRESTD) {
    return null;
  }
  if (config.SLURMGATE_SSH_HOST) {
    return "SLURMGATE_SLURMRESTD cannot be combined with SLURMGATE_SSH_HOST: the REST backend reads job scripts locally";
  }
  if (config.SLURMGATE_USER_MAP) {
    return "SLURMGATE_SLURMRESTD cannot be combined with SLURMGATE_USER_MAP: slurmrestd submits as one user only";
  }
  return null;
}

export function restClientFor(config: AgentConfig): RestClient {
  const target = parseRestTarget(config.SLURMGATE_SLURMRESTD ?? "");
  const tokenFile = config.SLURMGATE_SLURMRESTD_TOKEN_FILE;
  const user = restUser(config);
  return createRestClient({
    target,
    timeoutMs: config.SLURMGATE_COMMAND_TIMEOUT_SECONDS * 1000,
    ...(tokenFile ? { auth: jwtFromFile(tokenFile, user) } : {}),
  });
}

/** The CLI commands with submit, queue and cancel over REST. Throws on a config it cannot serve. */
export function restSlurmCommands(config: AgentConfig, cli: SlurmCommands): SlurmCommands {
  const problem = restConfigProblem(config);
  if (problem) {
    throw new Error(problem);
  }
  return createRestSlurmCommands({ client: restClientFor(config), cli, user: restUser(config) });
}

function restUser(config: AgentConfig): string {
  return config.SLURMGATE_SLURMRESTD_USER ?? agentAccount().username;
}

/** Tokens are renewed by rewriting the file: read it again when its mtime changes. */
function jwtFromFile(path: string, user: string): () => RestAuth | null {
  let cached: { mtimeMs: number; token: string } | null = null;
  return () => {
    try {
      const { mtimeMs } = statSync(path);
      if (cached?.mtimeMs !== mtimeMs) {
        const token = readFileSync(path, "utf8")
          .trim()
          .replace(/^SLURM_JWT=/, "");
        // A token is base64url parts and dots; anything else could not be sent as a header.
        cached = { mtimeMs, token: /^[A-Za-z0-9_.=-]{1,16384}$/.test(token) ? token : "" };
      }
      return cached.token ? { user, token: cached.token } : null;
    } catch {
      // No token: the daemon refuses the request, which reads as a failure, never as an empty queue.
      return null;
    }
  };
}

/** The doctor's lines for the REST backend: none when it is not configured. */
export async function restBackendChecks(
  config: AgentConfig,
): Promise<{ name: string; ok: boolean; detail: string; fix?: string }[]> {
  if (!config.SLURMGATE_SLURMRESTD) {
    return [];
  }
  const problem = restConfigProblem(config);
  if (problem) {
    return [{ name: "slurmrestd", ok: false, detail: problem, fix: "unset SLURMGATE_SLURMRESTD to use the commands" }];
  }
  const client = restClientFor(config);
  const down = await pingRest(client);
  client.close();
  return [
    down === null
      ? { name: "slurmrestd", ok: true, detail: `${config.SLURMGATE_SLURMRESTD} answers` }
      : {
          name: "slurmrestd",
          ok: false,
          detail: `${config.SLURMGATE_SLURMRESTD} is not answering: ${down}`,
          fix: "start slurmrestd on that socket as an unprivileged user (not root, not SlurmUser), or unset SLURMGATE_SLURMRESTD",
        },
  ];
}
