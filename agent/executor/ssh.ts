/**
 * Executor that drives a login node over SSH (ssh2, pure JavaScript): for sites that forbid
 * daemons on login nodes, or where the agent runs on a machine next to the cluster.
 *
 * - One persistent connection, opened on first use. Commands run on exec channels, file
 *   operations on one SFTP session over the same connection.
 * - The host key is pinned (`SHA256:<base64>`, as `ssh-keygen -lf` prints it); a server offering
 *   another key is refused before any credential is sent.
 * - Key auth from a private key file and/or the ssh-agent (SSH_AUTH_SOCK).
 * - When the connection drops, commands in flight fail (a failure to run, which callers treat as
 *   "outcome unknown"), and the next call reconnects with exponential backoff and jitter.
 * - argv becomes ONE shell string through {@link quoteArgs} (the only builder of shell text);
 *   the environment is set with `env -i NAME=value …`, so it never depends on the server's AcceptEnv.
 *   The remote login shell must be POSIX-like (sh, bash, ksh, zsh).
 * - A timeout sends TERM, then KILL after a grace period, to the remote process (the command is
 *   `exec`ed, so the signal reaches it), then closes the channel.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { posix } from "node:path";
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper, type Stats } from "ssh2";
import { quoteArgs, shellQuote } from "./quote.ts";
import type { ExecResult, Executor, FileStat, RunOptions } from "./types.ts";

/** Cap on captured output per stream, as in the local executor. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Time between TERM and KILL once a command timed out. */
const KILL_GRACE_MS = 2_000;
/** After KILL, how long to wait for the server to close the channel before giving up on it. */
const CLOSE_GRACE_MS = 3_000;
/** OpenSSH allows 10 sessions per connection by default (MaxSessions); SFTP holds one. */
const MAX_CHANNELS = 6;
/** SFTP read size: OpenSSH's sftp-server answers at most this much per request. */
const READ_CHUNK = 32 * 1024;
/** SFTP status code for "no such file" (ENOENT, ENOTDIR and ELOOP all map to it in OpenSSH). */
const SFTP_NO_SUCH_FILE = 2;

/** Thrown when the server's host key is not the pinned one. Never retried silently. */
export class HostKeyMismatchError extends Error {
  override readonly name = "HostKeyMismatchError";
}

/** Options for {@link createSshExecutor}. */
export interface SshExecutorOptions {
  host: string;
  port?: number;
  username: string;
  /** Pinned host key fingerprint(s): `SHA256:<base64>`; several may be given for a key rotation. */
  hostKey: string | string[];
  /** Private key (PEM/OpenSSH text); or use `agent`. */
  privateKey?: string | Buffer;
  passphrase?: string;
  /** ssh-agent socket (SSH_AUTH_SOCK). */
  agent?: string;
  /** Default timeout for `run` when the call gives none (ms). Default 60 s. */
  defaultTimeoutMs?: number;
  /** Connect + handshake + auth timeout (ms). Default 20 s. */
  connectTimeoutMs?: number;
  /** First reconnect delay (ms), doubled per failure up to `maxBackoffMs`, with ±25 % jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Keepalive probe interval (ms); 3 unanswered probes drop the connection. Default 15 s. */
  keepaliveMs?: number;
  /** Called on connect, disconnect and connect failures (no secrets in the fields). */
  log?: (level: "info" | "warn", message: string, fields?: Record<string, unknown>) => void;
}

/** An {@link Executor} with a connection to close. */
export interface SshExecutor extends Executor {
  /** Closes the connection; later calls reconnect. */
  close(): void;
  /** Opens the connection now (calls do it on demand); rejects on a host key mismatch or auth failure. */
  connect(): Promise<void>;
}

/**
 * The SHA256 fingerprint of a raw SSH public key blob, as `ssh-keygen -l -E sha256` prints it.
 * @example fingerprintOf(keyBlob) // => "SHA256:q6JS2VHNFkXA07i5u771scZx6P0qxs9Q+O1Vxb24b7c"
 */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "")}`;
}

/** Normalises a configured fingerprint: `SHA256:` prefix required, base64 padding ignored. */
export function parsePinnedHostKey(value: string | string[]): string[] {
  const items = (Array.isArray(value) ? value : value.split(","))
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => s.replace(/=+$/, ""));
  if (items.length === 0) {
    throw new Error("SLURMGATE_SSH_HOST_KEY is required in SSH mode (ssh-keygen -l -E sha256 -f host_key.pub)");
  }
  for (const item of items) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(item)) {
      throw new Error(
        `SLURMGATE_SSH_HOST_KEY must be a SHA256:<base64> fingerprint (got ${JSON.stringify(item)}); get it with: ssh-keyscan -p PORT HOST | ssh-keygen -lf - -E sha256`,
      );
    }
  }
  return items;
}

/**
 * Builds the remote command line: optional `cd`, then `exec env -i NAME=value … cmd args`, stdin
 * from /dev/null when there is no input (as the local executor does).
 * @example
 * buildRemoteCommand("squeue", ["-o", "%i|%T"], { env: { LC_ALL: "C" } })
 * // => `exec 'env' '-i' 'LC_ALL=C' 'squeue' '-o' '%i|%T' </dev/null`
 */
export function buildRemoteCommand(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
  pidMarker?: string,
): string {
  const argv: string[] = [];
  if (opts.env) {
    argv.push("env", "-i");
    for (const [name, value] of Object.entries(opts.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new Error(`invalid environment variable name ${JSON.stringify(name)}`);
      }
      argv.push(`${name}=${value}`);
    }
    if (cmd.includes("=")) {
      // env would take `a=b` as one more variable, not as the program.
      throw new Error(`refusing to run a program whose name contains '=': ${JSON.stringify(cmd)}`);
    }
  }
  argv.push(cmd, ...args);
  // sshd starts the login shell as a session (and process group) leader; `exec` keeps its pid, so
  // the pid printed first is the command's pid and its process group: a timeout kills the group.
  const announce = pidMarker ? `echo "${pidMarker}:$$" >&2; ` : "";
  const line = `${announce}exec ${quoteArgs(argv)}${opts.input === undefined ? " </dev/null" : ""}`;
  return opts.cwd ? `cd ${shellQuote(opts.cwd)} || exit 1; ${line}` : line;
}

/** A counting semaphore for exec channels. */
function limiter(max: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) {
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else {
      active++;
    }
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) {
        next();
      } else {
        active--;
      }
    }
  };
}

/**
 * Creates an {@link Executor} for a remote login node.
 * @example
 * const exec = createSshExecutor({ host: "login1", username: "svc", hostKey: "SHA256:…", agent: process.env.SSH_AUTH_SOCK });
 * const { stdout } = await exec.run("squeue", ["-h", "-o", "%i|%T"], { env: slurmEnv });
 */
export function createSshExecutor(options: SshExecutorOptions): SshExecutor {
  const pinned = parsePinnedHostKey(options.hostKey);
  if (!options.privateKey && !options.agent) {
    throw new Error("SSH mode needs SLURMGATE_SSH_KEY (a private key file) or an ssh-agent (SSH_AUTH_SOCK)");
  }
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 60_000;
  const minBackoff = options.minBackoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const log = options.log ?? (() => {});
  const where = `${options.username}@${options.host}:${options.port ?? 22}`;
  const channels = limiter(MAX_CHANNELS);

  let client: Client | null = null;
  let connecting: Promise<Client> | null = null;
  let sftp: Promise<SFTPWrapper> | null = null;
  let failures = 0;
  let nextAttemptAt = 0;
  let closed = false;

  const dropped = (c: Client) => {
    if (client === c) {
      client = null;
      sftp = null;
      log("warn", "ssh connection closed", { to: where });
    }
  };

  const openConnection = (): Promise<Client> =>
    new Promise((resolve, reject) => {
      const c = new Client();
      let mismatch: string | null = null;
      let settled = false;
      const config: ConnectConfig = {
        host: options.host,
        port: options.port ?? 22,
        username: options.username,
        privateKey: options.privateKey,
        passphrase: options.passphrase,
        agent: options.agent,
        readyTimeout: options.connectTimeoutMs ?? 20_000,
        keepaliveInterval: options.keepaliveMs ?? 15_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const offered = fingerprintOf(key);
          if (pinned.includes(offered)) {
            return true;
          }
          mismatch = offered;
          return false;
        },
      };
      c.on("ready", () => {
        settled = true;
        resolve(c);
      });
      c.on("error", (err) => {
        if (!settled) {
          settled = true;
          c.end();
          reject(
            mismatch
              ? new HostKeyMismatchError(
                  `host key mismatch for ${options.host}:${options.port ?? 22}: the server offered ${mismatch}, SLURMGATE_SSH_HOST_KEY pins ${pinned.join(", ")}; refusing to connect (if the host key really changed, verify it out of band and update SLURMGATE_SSH_HOST_KEY)`,
                )
              : new Error(`ssh to ${where} failed: ${err.message}`),
          );
        }
      });
      c.on("close", () => {
        if (!settled) {
          settled = true;
          reject(new Error(`ssh to ${where}: connection closed during the handshake`));
        }
        dropped(c);
      });
      c.on("end", () => dropped(c));
      c.connect(config);
    });

  const connection = async (): Promise<Client> => {
    if (closed) {
      throw new Error("ssh executor closed");
    }
    if (client) {
      return client;
    }
    connecting ??= (async () => {
      const wait = nextAttemptAt - Date.now();
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait));
      }
      try {
        const c = await openConnection();
        if (closed) {
          c.end();
          throw new Error("ssh executor closed");
        }
        failures = 0;
        nextAttemptAt = 0;
        client = c;
        log("info", "ssh connected", { to: where });
        return c;
      } catch (err) {
        failures++;
        const backoff = Math.min(maxBackoff, minBackoff * 2 ** Math.min(failures - 1, 16));
        nextAttemptAt = Date.now() + backoff * (0.75 + Math.random() / 2);
        log("warn", "ssh connect failed", { to: where, error: (err as Error).message, failures });
        throw err;
      } finally {
        connecting = null;
      }
    })();
    return connecting;
  };

  const session = async (): Promise<SFTPWrapper> => {
    const c = await connection();
    if (!sftp) {
      const opening = new Promise<SFTPWrapper>((resolve, reject) =>
        c.sftp((err, s) => {
          if (err) {
            reject(new Error(`sftp to ${where}: ${err.message}`));
            return;
          }
          s.on("close", () => {
            if (sftp === opening) {
              sftp = null;
            }
          });
          resolve(s);
        }),
      );
      sftp = opening;
      opening.catch(() => {
        if (sftp === opening) {
          sftp = null;
        }
      });
    }
    return sftp;
  };

  /** Runs one SFTP call; maps "no such file" to null. */
  const sftpCall = async <T>(
    what: string,
    p: string,
    fn: (s: SFTPWrapper, cb: (err: Error | undefined | null, value?: T) => void) => void,
  ): Promise<T> => {
    const s = await session();
    return new Promise<T>((resolve, reject) =>
      fn(s, (err, value) => {
        if (err) {
          const e = new Error(`${what} ${p} on ${where}: ${err.message}`) as Error & { code?: unknown };
          e.code = (err as { code?: unknown }).code === SFTP_NO_SUCH_FILE ? "ENOENT" : (err as { code?: unknown }).code;
          reject(e);
        } else {
          resolve(value as T);
        }
      }),
    );
  };
  const orNull = <T>(promise: Promise<T>): Promise<T | null> =>
    promise.catch((err: { code?: unknown }) => {
      if (err.code === "ENOENT") {
        return null;
      }
      throw err;
    });

  const lstat = (p: string) => orNull(sftpCall<Stats>("lstat", p, (s, cb) => s.lstat(p, cb)));

  /** Sends `kill -SIGNAL -- -pgid` on a fresh channel (best effort); also the SSH signal request. */
  const killRemote = (c: Client, stream: ClientChannel, pid: number | null, signal: "TERM" | "KILL") => {
    try {
      stream.signal(signal); // honoured by servers that implement RFC 4254 signals; ignored by others
    } catch {}
    if (pid === null) {
      return;
    }
    try {
      c.exec(`kill -${signal} -- -${pid} 2>/dev/null || kill -${signal} ${pid} 2>/dev/null </dev/null`, (err, s) => {
        if (!err) {
          s.on("error", () => {});
          s.resume();
          s.stderr.resume();
          s.end();
        }
      });
    } catch {}
  };

  const run = (cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> => {
    const marker = `slurmgate-pid-${randomBytes(8).toString("hex")}`;
    const line = buildRemoteCommand(cmd, args, opts, marker);
    const markerLine = new RegExp(`(^|\\n)${marker}:(\\d+)\\n`);
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    return channels(async () => {
      const c = await connection();
      return new Promise<ExecResult>((resolve, reject) => {
        c.exec(line, (err, stream: ClientChannel) => {
          if (err) {
            reject(new Error(`ssh exec on ${where}: ${err.message}`));
            return;
          }
          const out: Buffer[] = [];
          const errs: Buffer[] = [];
          let outBytes = 0;
          let errBytes = 0;
          let code: number | null = null;
          let pid: number | null = null;
          let exited = false;
          let timedOut = false;
          const timers: NodeJS.Timeout[] = [];
          timers.push(
            setTimeout(() => {
              timedOut = true;
              killRemote(c, stream, pid, "TERM");
              timers.push(
                setTimeout(() => {
                  killRemote(c, stream, pid, "KILL");
                  stream.close();
                  timers.push(setTimeout(() => finish(), CLOSE_GRACE_MS));
                }, KILL_GRACE_MS),
              );
            }, timeoutMs),
          );
          let done = false;
          const finish = () => {
            if (done) {
              return;
            }
            done = true;
            for (const t of timers) {
              clearTimeout(t);
            }
            if (!exited && !timedOut) {
              reject(new Error(`ssh connection to ${where} lost while running ${cmd}; its outcome is unknown`));
              return;
            }
            resolve({
              code: timedOut ? null : code,
              stdout: Buffer.concat(out).toString("utf8"),
              stderr: Buffer.concat(errs).toString("utf8").replace(markerLine, "$1"),
              timedOut,
            });
          };
          stream.on("data", (chunk: Buffer) => {
            if (outBytes < MAX_OUTPUT_BYTES) {
              out.push(chunk);
              outBytes += chunk.length;
            }
          });
          stream.stderr.on("data", (chunk: Buffer) => {
            if (errBytes < MAX_OUTPUT_BYTES) {
              errs.push(chunk);
              errBytes += chunk.length;
            }
            if (pid === null) {
              const m = markerLine.exec(Buffer.concat(errs).toString("utf8"));
              if (m?.[2]) {
                pid = Number(m[2]);
              }
            }
          });
          stream.on("exit", (exitCode: number | null) => {
            exited = true;
            code = typeof exitCode === "number" ? exitCode : null;
          });
          stream.on("close", finish);
          stream.on("error", () => {});
          if (opts.input !== undefined) {
            stream.end(opts.input);
          } else {
            stream.end();
          }
        });
      });
    });
  };

  const writeFile = async (p: string, data: string | Uint8Array, mode = 0o600): Promise<void> => {
    const tmp = posix.join(posix.dirname(p), `.${posix.basename(p)}.${randomBytes(6).toString("hex")}.tmp`);
    const s = await session();
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
    try {
      // `wx` = O_CREAT|O_EXCL: refuses to follow a pre-planted symlink at the temp name.
      const handle = await sftpCall<Buffer>("open", tmp, (x, cb) => x.open(tmp, "wx", { mode }, cb));
      try {
        let written = 0;
        while (written < buf.length) {
          const n = Math.min(READ_CHUNK, buf.length - written);
          await sftpCall<void>("write", tmp, (x, cb) => x.write(handle, buf, written, n, written, (e) => cb(e)));
          written += n;
        }
        // The server's umask may have narrowed the mode at open.
        await sftpCall<void>("chmod", tmp, (x, cb) => x.fchmod(handle, mode, (e) => cb(e)));
      } finally {
        await sftpCall<void>("close", tmp, (x, cb) => x.close(handle, (e) => cb(e))).catch(() => {});
      }
      // posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses to.
      await sftpCall<void>("rename", p, (x, cb) => x.ext_openssh_rename(tmp, p, (e) => cb(e)));
    } catch (err) {
      await new Promise<void>((resolve) => s.unlink(tmp, () => resolve()));
      throw err;
    }
  };

  const readFile = async (p: string, range: { offset?: number; length?: number } = {}): Promise<Buffer | null> => {
    // SFTP open follows symlinks and has no O_NOFOLLOW: look first (best effort over SFTP).
    if ((await lstat(p))?.isSymbolicLink()) {
      return null;
    }
    const handle = await orNull(sftpCall<Buffer>("open", p, (s, cb) => s.open(p, "r", cb)));
    if (!handle) {
      return null;
    }
    try {
      const offset = range.offset ?? 0;
      const length =
        range.length ?? Math.max(0, (await sftpCall<Stats>("fstat", p, (s, cb) => s.fstat(handle, cb))).size - offset);
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const want = Math.min(READ_CHUNK, length - got);
        const n = await sftpCall<number>("read", p, (s, cb) =>
          s.read(handle, buf, got, want, offset + got, (e, bytesRead) => cb(e, bytesRead)),
        ).catch((err: { code?: unknown }) => {
          // ssh2 reports end of file as an error with code 1 (SSH_FX_EOF).
          if (err.code === 1) {
            return 0;
          }
          throw err;
        });
        if (!n) {
          break;
        }
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      await sftpCall<void>("close", p, (s, cb) => s.close(handle, (e) => cb(e))).catch(() => {});
    }
  };

  const mkdir = async (p: string, mode = 0o700): Promise<void> => {
    const absolute = posix.resolve("/", p);
    const parts = absolute.split("/").filter(Boolean);
    let current = "";
    for (const part of parts) {
      current += `/${part}`;
      const st = await sftpCall<Stats>("stat", current, (s, cb) => s.stat(current, cb)).catch(
        (err: { code?: unknown }) => {
          if (err.code === "ENOENT") {
            return null;
          }
          throw err;
        },
      );
      if (st) {
        if (!st.isDirectory()) {
          throw Object.assign(new Error(`mkdir ${p} on ${where}: ${current} is not a directory`), { code: "ENOTDIR" });
        }
        continue;
      }
      try {
        await sftpCall<void>("mkdir", current, (s, cb) => s.mkdir(current, { mode }, (e) => cb(e)));
      } catch (err) {
        // Another process may have made it in between.
        const again = await lstat(current);
        if (!again?.isDirectory()) {
          throw err;
        }
      }
    }
  };

  /**
   * SFTP has no mkdirat: the parent must resolve to itself (no symlink anywhere) before the mkdir,
   * and the new directory to itself after it; a component swapped for a symlink in between shows
   * in the second check, which fails with ELOOP (the caller refuses the job).
   */
  const realpathOf = (p: string) => orNull(sftpCall<string>("realpath", p, (s, cb) => s.realpath(p, cb)));
  const mkdirNoFollow = async (p: string, mode = 0o700): Promise<boolean> => {
    const absolute = posix.resolve("/", p);
    const parent = posix.dirname(absolute);
    if (absolute === "/") {
      throw Object.assign(new Error(`mkdir ${p} on ${where}: no directory name`), { code: "EINVAL" });
    }
    const loop = (what: string) =>
      Object.assign(new Error(`mkdir ${p} on ${where}: ${what} goes through a symlink`), { code: "ELOOP" });
    if ((await realpathOf(parent)) !== parent) {
      throw loop(parent);
    }
    if (await lstat(absolute)) {
      return false;
    }
    try {
      await sftpCall<void>("mkdir", absolute, (s, cb) => s.mkdir(absolute, { mode }, (e) => cb(e)));
    } catch (err) {
      if (await lstat(absolute)) {
        return false;
      }
      throw err;
    }
    if ((await realpathOf(absolute)) !== absolute) {
      throw loop(absolute);
    }
    return true;
  };

  const rm = async (p: string, opts: { recursive?: boolean } = {}): Promise<void> => {
    const st = await lstat(p);
    if (!st) {
      return;
    }
    if (st.isDirectory()) {
      if (!opts.recursive) {
        throw Object.assign(new Error(`rm ${p} on ${where}: is a directory`), { code: "EISDIR" });
      }
      const entries = await sftpCall<{ filename: string }[]>("readdir", p, (s, cb) => s.readdir(p, cb));
      for (const entry of entries) {
        if (entry.filename !== "." && entry.filename !== "..") {
          await rm(posix.join(p, entry.filename), opts);
        }
      }
      await orNull(sftpCall<void>("rmdir", p, (s, cb) => s.rmdir(p, (e) => cb(e))));
      return;
    }
    await orNull(sftpCall<void>("unlink", p, (s, cb) => s.unlink(p, (e) => cb(e))));
  };

  return {
    run,
    writeFile,
    readFile,
    async stat(p): Promise<FileStat | null> {
      const s = await lstat(p);
      return s
        ? {
            isFile: s.isFile(),
            isDirectory: s.isDirectory(),
            isSymbolicLink: s.isSymbolicLink(),
            size: s.size,
            mode: s.mode & 0o7777,
            mtimeMs: s.mtime * 1000,
          }
        : null;
    },
    mkdir,
    mkdirNoFollow,
    async realpath(p) {
      const resolved = await orNull(sftpCall<string>("realpath", p, (s, cb) => s.realpath(p, cb)));
      // Some servers resolve a missing last component anyway; "does not exist" must stay null.
      return resolved && (await lstat(resolved)) ? resolved : null;
    },
    rm,
    async connect() {
      await connection();
    },
    close() {
      closed = true;
      client?.end();
      client = null;
      sftp = null;
    },
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
