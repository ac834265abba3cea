/**
 * Commands over SSH exec channels: argv becomes ONE shell string through {@link quoteArgs} (the
 * only builder of shell text), the environment is set with `env -i NAME=value …` (never the
 * server's AcceptEnv), and a timeout sends TERM, then KILL after a grace period, to the remote
 * process group, whose id the command line announces on stderr before it `exec`s the command.
 */
import { randomBytes } from "node:crypto";
import type { Client, ClientChannel } from "ssh2";
import { KILL_GRACE_MS, outputCap } from "../limits.ts";
import { quoteArgs, shellQuote } from "../quote.ts";
import type { ExecResult, RunOptions } from "../types.ts";
import type { SshConnection } from "./connection.ts";

/** After KILL, how long to wait for the server to close the channel before giving up on it. */
const CLOSE_GRACE_MS = 3_000;
/** OpenSSH allows 10 sessions per connection by default (MaxSessions); SFTP holds one. */
const MAX_CHANNELS = 6;
/** Room kept on stderr for the pid announcement (`<marker>:<pid>\n`), which is not output. */
const MARKER_ROOM = 64;

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

/**
 * Finds the line `<marker>:<pid>` (at the start of stderr or of a line) in the stderr bytes seen
 * so far; returns the pid and stderr without that line, byte for byte.
 * @example
 * takePidMarker(Buffer.from("rc noise\nm1:42\nerr\n"), "m1") // => { pid: 42, rest: <"rc noise\nerr\n"> }
 */
export function takePidMarker(stderr: Buffer, marker: string): { pid: number | null; rest: Buffer } {
  // latin1 maps each byte to one character, so string indexes are byte offsets.
  const m = new RegExp(`(^|\\n)${marker}:(\\d+)\\n`).exec(stderr.toString("latin1"));
  if (!m?.[2]) {
    return { pid: null, rest: stderr };
  }
  const start = m.index + (m[1]?.length ?? 0);
  return {
    pid: Number(m[2]),
    rest: Buffer.concat([stderr.subarray(0, start), stderr.subarray(m.index + m[0].length)]),
  };
}

/** A counting semaphore: at most `max` calls of `fn` run at once, the others wait in order. */
export function limiter(max: number) {
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

/** Sends `kill -SIGNAL -- -pgid` on a fresh channel (best effort); also the SSH signal request. */
function killRemote(c: Client, stream: ClientChannel, pid: number | null, signal: "TERM" | "KILL"): void {
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
}

/** What one remote command needs besides its channel. */
interface Watch {
  c: Client;
  where: string;
  cmd: string;
  marker: string;
  timeoutMs: number;
  maxOutputBytes: number;
  stopOn?: RegExp;
  binary?: boolean;
}

/**
 * Collects one channel's output and exit, and kills the remote command on timeout. Resolves when
 * the channel closes; rejects when it closed without an exit status (the connection dropped: the
 * command's outcome is unknown).
 */
function watchChannel(stream: ClientChannel, w: Watch): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const out = outputCap(w.maxOutputBytes);
    const errs = outputCap(w.maxOutputBytes + MARKER_ROOM);
    let code: number | null = null;
    let pid: number | null = null;
    let exited = false;
    let timedOut = false;
    let stopped = false;
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      if (done) {
        return;
      }
      done = true;
      for (const t of timers) {
        clearTimeout(t);
      }
      if (!exited && !timedOut && !stopped) {
        reject(new Error(`ssh connection to ${w.where} lost while running ${w.cmd}; its outcome is unknown`));
        return;
      }
      resolve({
        code: timedOut ? null : code,
        stdout: out.bytes().toString("utf8"),
        ...(w.binary ? { stdoutBytes: out.bytes() } : {}),
        stderr: takePidMarker(errs.bytes(), w.marker).rest.subarray(0, w.maxOutputBytes).toString("utf8"),
        timedOut,
        ...(stopped ? { stopped: true as const } : {}),
      });
    };
    timers.push(
      setTimeout(() => {
        timedOut = true;
        killRemote(w.c, stream, pid, "TERM");
        timers.push(
          setTimeout(() => {
            killRemote(w.c, stream, pid, "KILL");
            stream.close();
            timers.push(setTimeout(finish, CLOSE_GRACE_MS));
          }, KILL_GRACE_MS),
        );
      }, w.timeoutMs),
    );
    stream.on("data", out.push);
    stream.stderr.on("data", (chunk: Buffer) => {
      errs.push(chunk);
      pid ??= takePidMarker(errs.bytes(), w.marker).pid;
      if (w.stopOn && !stopped && w.stopOn.test(takePidMarker(errs.bytes(), w.marker).rest.toString("utf8"))) {
        stopped = true;
        killRemote(w.c, stream, pid, "TERM");
      }
    });
    stream.on("exit", (exitCode: number | null) => {
      exited = true;
      code = typeof exitCode === "number" ? exitCode : null;
    });
    stream.on("close", finish);
    stream.on("error", () => {});
  });
}

/**
 * The executor's `run`: one exec channel per command (at most {@link MAX_CHANNELS} at once) on the
 * shared connection.
 */
export function createRemoteRun(
  connection: SshConnection,
  limits: { defaultTimeoutMs: number; maxOutputBytes: number },
): (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<ExecResult> {
  const channels = limiter(MAX_CHANNELS);
  return (cmd, args, opts = {}) => {
    const marker = `slurmgate-pid-${randomBytes(8).toString("hex")}`;
    const line = buildRemoteCommand(cmd, args, opts, marker);
    const timeoutMs = opts.timeoutMs ?? limits.defaultTimeoutMs;
    return channels(async () => {
      const c = await connection.client();
      return new Promise<ExecResult>((resolve, reject) =>
        c.exec(line, (err, stream) => {
          if (err) {
            reject(new Error(`ssh exec on ${connection.where}: ${err.message}`));
            return;
          }
          // Listeners go on in this callback: the exit and close may arrive in the same read.
          watchChannel(stream, {
            c,
            where: connection.where,
            cmd,
            marker,
            timeoutMs,
            maxOutputBytes: limits.maxOutputBytes,
            stopOn: opts.stopOn,
            binary: opts.binary,
          }).then(resolve, reject);
          stream.end(opts.input);
        }),
      );
    });
  };
}
