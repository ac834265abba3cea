/**
 * Executor that drives a login node over SSH (ssh2, pure JavaScript): for sites that forbid
 * daemons on login nodes, or where the agent runs on a machine next to the cluster.
 *
 * - One persistent connection, opened on first use, with a pinned host key (`ssh/connection.ts`,
 *   `ssh/host-key.ts`); when it drops, commands in flight fail ("outcome unknown" to callers) and
 *   the next call reconnects with exponential backoff and jitter.
 * - Key auth from a private key file and/or the ssh-agent (SSH_AUTH_SOCK).
 * - Commands run on exec channels (`ssh/exec.ts`): one quoted shell line, `env -i` for the
 *   environment, TERM then KILL to the remote process group on timeout. The remote login shell
 *   must be POSIX-like (sh, bash, ksh, zsh).
 * - File operations run on one SFTP session over the same connection (`ssh/sftp.ts`); browsing
 *   runs `find -P` and `dd iflag=nofollow` on exec channels (`browse-find.ts`), since SFTP's open
 *   follows symlinks.
 * - Output caps, timeouts and the kill grace are the local executor's (`limits.ts`).
 */
import { readFileSync } from "node:fs";
import { findBrowser } from "./browse-find.ts";
import { DEFAULT_TIMEOUT_MS, MAX_OUTPUT_BYTES } from "./limits.ts";
import { type SshConnectionOptions, createConnection } from "./ssh/connection.ts";
import { createRemoteRun } from "./ssh/exec.ts";
import { createSftpOps } from "./ssh/sftp.ts";
import type { Executor } from "./types.ts";

export { HostKeyMismatchError, fingerprintOf, parsePinnedHostKey } from "./ssh/host-key.ts";
export { buildRemoteCommand } from "./ssh/exec.ts";

/** Options for {@link createSshExecutor}. */
export interface SshExecutorOptions extends SshConnectionOptions {
  /** Default timeout for `run` when the call gives none (ms). Default 60 s. */
  defaultTimeoutMs?: number;
  /** Bytes kept per output stream; the rest is dropped. Default {@link MAX_OUTPUT_BYTES}. */
  maxOutputBytes?: number;
}

/** An {@link Executor} with a connection to close. */
export interface SshExecutor extends Executor {
  /** Closes the connection; later calls reconnect. */
  close(): void;
  /** Opens the connection now (calls do it on demand); rejects on a host key mismatch or auth failure. */
  connect(): Promise<void>;
}

/**
 * Creates an {@link Executor} for a remote login node.
 * @example
 * const exec = createSshExecutor({ host: "login1", username: "svc", hostKey: "SHA256:…", agent: process.env.SSH_AUTH_SOCK });
 * const { stdout } = await exec.run("squeue", ["-h", "-o", "%i|%T"], { env: slurmEnv });
 */
export function createSshExecutor(options: SshExecutorOptions): SshExecutor {
  const connection = createConnection(options);
  const run = createRemoteRun(connection, {
    defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxOutputBytes: options.maxOutputBytes ?? MAX_OUTPUT_BYTES,
  });
  return {
    run,
    ...createSftpOps(connection),
    browse: findBrowser(run),
    async connect() {
      await connection.client();
    },
    close: connection.close,
  };
}

/** Config keys the SSH executor reads (a subset of AgentConfig). */
export interface SshConfig {
  SLURMGATE_SSH_HOST?: string;
  SLURMGATE_SSH_PORT: number;
  SLURMGATE_SSH_USER?: string;
  SLURMGATE_SSH_KEY?: string;
  SLURMGATE_SSH_HOST_KEY?: string;
  SLURMGATE_COMMAND_TIMEOUT_SECONDS: number;
}

/**
 * Builds the SSH executor from the agent's config and environment (SSH_AUTH_SOCK, USER).
 * Throws a clear error when the host key is not pinned or no credential is available.
 */
export function sshExecutorFromConfig(
  config: SshConfig,
  env: Record<string, string | undefined>,
  log?: SshExecutorOptions["log"],
): SshExecutor {
  if (!config.SLURMGATE_SSH_HOST) {
    throw new Error("SLURMGATE_SSH_HOST is not set");
  }
  if (!config.SLURMGATE_SSH_HOST_KEY) {
    throw new Error(
      "SLURMGATE_SSH_HOST_KEY is required in SSH mode: pin the login node's host key (ssh-keyscan -p PORT HOST | ssh-keygen -lf - -E sha256)",
    );
  }
  const username = config.SLURMGATE_SSH_USER || env.USER || env.LOGNAME;
  if (!username) {
    throw new Error("SLURMGATE_SSH_USER is not set and USER is unknown");
  }
  return createSshExecutor({
    host: config.SLURMGATE_SSH_HOST,
    port: config.SLURMGATE_SSH_PORT,
    username,
    hostKey: config.SLURMGATE_SSH_HOST_KEY,
    privateKey: config.SLURMGATE_SSH_KEY ? readFileSync(config.SLURMGATE_SSH_KEY) : undefined,
    agent: env.SSH_AUTH_SOCK || undefined,
    defaultTimeoutMs: config.SLURMGATE_COMMAND_TIMEOUT_SECONDS * 1000,
    log,
  });
}

/**
 * The login environment of the remote account (what a Slurm command would see there), parsed from
 * `env -0`: the Slurm commands' PATH/HOME/USER come from the login node, not from this machine.
 */
export async function remoteLoginEnv(executor: Executor): Promise<Record<string, string>> {
  const result = await executor.run("env", ["-0"]);
  if (result.code !== 0) {
    throw new Error(`env on the login node failed: ${result.stderr.trim() || `exit ${result.code}`}`);
  }
  const env: Record<string, string> = {};
  for (const entry of result.stdout.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) {
      env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
  }
  return env;
}
