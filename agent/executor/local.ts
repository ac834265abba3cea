/**
 * Executor that runs commands and file operations on this machine.
 *
 * Commands are spawned with an argv array (`shell: false`), so no argument is ever parsed by a
 * shell. A timeout sends SIGTERM and, if the process is still alive after a grace period, SIGKILL.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fsSync from "node:fs";
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { localBrowser } from "./browse-local.ts";
import { DEFAULT_TIMEOUT_MS, KILL_GRACE_MS, MAX_OUTPUT_BYTES, outputCap } from "./limits.ts";
import { createSpawnerPool, spawnerCanRun } from "./spawner.ts";
import { type SpawnerChoice, spawnerKind } from "./spawner-programs.ts";
import type { ExecResult, Executor, FileStat, RunOptions } from "./types.ts";

/** Options for {@link createLocalExecutor}. */
export interface LocalExecutorOptions {
  /** Default timeout for `run` when the call gives none (ms). Default 60 s. */
  defaultTimeoutMs?: number;
  /** Bytes kept per output stream; the rest is dropped. Default {@link MAX_OUTPUT_BYTES}. */
  maxOutputBytes?: number;
  /**
   * Commands at once through long-lived spawners (agent/executor/spawner.ts), so that starting
   * one never forks the agent itself; 0 spawns every command directly from Node. Default 4.
   */
  spawners?: number;
  /** Which program the spawners are (agent/executor/spawner-programs.ts). Default `auto`. */
  spawner?: SpawnerChoice;
}

/**
 * Creates an {@link Executor} for the local machine.
 * @example
 * const exec = createLocalExecutor();
 * const { code, stdout } = await exec.run("squeue", ["-h", "-o", "%i|%T"], { env: slurmEnv });
 */
export function createLocalExecutor(options: LocalExecutorOptions = {}): Executor {
  const defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxOutputBytes = options.maxOutputBytes ?? MAX_OUTPUT_BYTES;
  const size = options.spawners ?? 4;
  const pool = size > 0 ? createSpawnerPool(size, maxOutputBytes, spawnerKind(options.spawner ?? "auto")) : null;
  return {
    run(cmd, args, opts = {}) {
      const full = { timeoutMs: defaultTimeoutMs, ...opts };
      return pool && spawnerCanRun(args, full) ? pool.run(cmd, args, full) : runLocal(cmd, args, full, maxOutputBytes);
    },
    // The job-directory work (stat, realpath, mkdir, small writes) is done with plain syscalls: each
    // takes microseconds on the login node, less than the thread-pool round trip of its async form,
    // and there are ~30 of them on the path of every submission (bench/RESULTS-agent.md).
    writeFile: async (p, data, mode) => writeFileAtomic(p, data, mode),
    writeNewFiles: async (dir, files) => {
      for (const file of files) {
        writeNewFile(path.join(dir, file.name), file.data, file.mode);
      }
    },
    writeFileStream: writeStreamAtomic,
    readFile: readRange,
    stat: async (p) => statOrNull(p),
    async mkdir(p, mode = 0o700) {
      await fs.mkdir(p, { recursive: true, mode });
    },
    mkdirNoFollow: async (p, mode) => mkdirNoFollow(p, mode),
    async realpath(p) {
      try {
        return fsSync.realpathSync.native(p);
      } catch (err) {
        if (isNotFound(err)) {
          return null;
        }
        throw err;
      }
    },
    async rm(p, opts = {}) {
      fsSync.rmSync(p, { force: true, recursive: opts.recursive ?? false });
    },
    browse: localBrowser,
  };
}

/** Linux exposes each open descriptor as a directory path: the base of an openat-style walk. */
const PROC_FD = "/proc/self/fd";
const hasProcFd = existsSync(PROC_FD);

/**
 * Walks `p` one component at a time through open directory descriptors (O_NOFOLLOW each), then
 * creates the last component relative to its parent's descriptor (mkdirat, which Node lacks).
 * Swapping any component for a symlink after it was opened changes nothing: the walk holds the
 * directories, not their names. The agent runs on Linux login nodes; without /proc it refuses.
 */
function mkdirNoFollow(p: string, mode = 0o700): boolean {
  if (!hasProcFd) {
    throw Object.assign(new Error(`mkdir ${p}: ${PROC_FD} is not available`), { code: "ENOSYS" });
  }
  const parts = path.posix.resolve("/", p).split("/").filter(Boolean);
  const last = parts.pop();
  if (!last) {
    throw Object.assign(new Error(`mkdir ${p}: no directory name`), { code: "EINVAL" });
  }
  const flags = fsSync.constants.O_RDONLY | fsSync.constants.O_DIRECTORY | fsSync.constants.O_NOFOLLOW;
  let dir = fsSync.openSync("/", fsSync.constants.O_RDONLY | fsSync.constants.O_DIRECTORY);
  try {
    for (const part of parts) {
      // A symlink fails here (ELOOP), and so does anything that is not a directory (ENOTDIR).
      const next = fsSync.openSync(`${PROC_FD}/${dir}/${part}`, flags);
      fsSync.closeSync(dir);
      dir = next;
    }
    try {
      fsSync.mkdirSync(`${PROC_FD}/${dir}/${last}`, { mode });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        return false;
      }
      throw err;
    }
  } finally {
    fsSync.closeSync(dir);
  }
}

function runLocal(cmd: string, args: readonly string[], opts: RunOptions, maxOutputBytes: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      shell: false,
      cwd: opts.cwd,
      env: opts.env,
      // Without input, stdin is /dev/null: a socket on stdin makes Debian's bash source ~/.bashrc
      // (it believes sshd started it), and libuv pipes are socketpairs.
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out = outputCap(maxOutputBytes);
    const err = outputCap(maxOutputBytes);
    let timedOut = false;
    let stopped = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      child.kill("SIGTERM");
      killTimer ??= setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
    };
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop();
          }, opts.timeoutMs);
    child.stdout?.on("data", out.push);
    child.stderr?.on("data", (chunk: Buffer) => {
      err.push(chunk);
      if (opts.stopOn && !stopped && opts.stopOn.test(err.bytes().toString("utf8"))) {
        stopped = true;
        stop();
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      const stdoutBytes = out.bytes();
      resolve({
        code: timedOut ? null : code,
        stdout: stdoutBytes.toString("utf8"),
        ...(opts.binary ? { stdoutBytes } : {}),
        stderr: err.bytes().toString("utf8"),
        timedOut,
        ...(stopped ? { stopped: true as const } : {}),
      });
    });
    if (child.stdin) {
      // A command that exits without reading stdin makes the write fail with EPIPE; that is fine.
      child.stdin.on("error", () => {});
      child.stdin.end(opts.input);
    }
  });
}

function writeFileAtomic(p: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = path.join(path.dirname(p), `.${path.basename(p)}.${process.pid}.${Date.now()}.tmp`);
  try {
    // O_EXCL refuses to follow a pre-planted symlink at the temp name.
    const fd = fsSync.openSync(tmp, "wx", mode);
    try {
      fsSync.writeFileSync(fd, data);
      fsSync.fchmodSync(fd, mode); // the umask may have narrowed or the mode widened
    } finally {
      fsSync.closeSync(fd);
    }
    fsSync.renameSync(tmp, p);
  } catch (err) {
    fsSync.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Read once: process.umask() without an argument is racy only while something changes it. */
let umask: number | undefined;

/**
 * A file created where it is to stay: one open, one write, one close. The temp + rename of
 * {@link writeFileAtomic} exists for directories another account may write into (a symlink planted
 * at the name would otherwise be written through, or a reader see half a file); O_EXCL|O_NOFOLLOW
 * gives the first guarantee by itself (it fails on any existing name, symlink or not), and the
 * second holds in a directory no reader knows of yet. On EEXIST it falls back to the temp + rename.
 */
function writeNewFile(p: string, data: string | Uint8Array, mode: number): void {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsSync.constants;
  let fd: number;
  try {
    fd = fsSync.openSync(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      writeFileAtomic(p, data, mode);
      return;
    }
    throw err;
  }
  try {
    fsSync.writeFileSync(fd, data);
    umask ??= process.umask();
    if (umask & mode) {
      fsSync.fchmodSync(fd, mode); // a umask that takes the owner's own bits: give the mode back
    }
  } catch (err) {
    fsSync.closeSync(fd);
    fsSync.rmSync(p, { force: true });
    throw err;
  }
  fsSync.closeSync(fd);
}

/** The temp file beside `p` a write goes to before its rename. */
const tempBeside = (p: string) =>
  path.join(path.dirname(p), `.${path.basename(p)}.${randomBytes(6).toString("hex")}.tmp`);

async function writeStreamAtomic(p: string, body: AsyncIterable<Uint8Array>, mode = 0o600): Promise<void> {
  const tmp = tempBeside(p);
  let handle: fs.FileHandle | undefined;
  try {
    // O_EXCL|O_NOFOLLOW: a symlink planted at the temp name is refused, never written through.
    handle = await fs.open(
      tmp,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      mode,
    );
    // One chunk at a time: the next is pulled only once this one is on disk (back-pressure).
    for await (const chunk of body) {
      let done = 0;
      while (done < chunk.length) {
        done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
      }
    }
    await handle.chmod(mode); // the umask may have narrowed or the mode widened
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, p);
  } catch (err) {
    await handle?.close().catch(() => {});
    fsSync.rmSync(tmp, { force: true });
    throw err;
  }
}

async function readRange(p: string, range: { offset?: number; length?: number } = {}): Promise<Buffer | null> {
  let handle: fs.FileHandle;
  try {
    // O_NOFOLLOW: a symlink in the last component fails with ELOOP instead of being followed.
    handle = await fs.open(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if (isNotFound(err) || (err as { code?: unknown }).code === "ELOOP") {
      return null;
    }
    throw err;
  }
  try {
    const offset = range.offset ?? 0;
    const length = range.length ?? Math.max(0, (await handle.stat()).size - offset);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function statOrNull(p: string): FileStat | null {
  try {
    const s = fsSync.lstatSync(p);
    return {
      isFile: s.isFile(),
      isDirectory: s.isDirectory(),
      isSymbolicLink: s.isSymbolicLink(),
      size: s.size,
      mode: s.mode & 0o7777,
      mtimeMs: s.mtimeMs,
    };
  } catch (err) {
    if (isNotFound(err)) {
      return null;
    }
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
