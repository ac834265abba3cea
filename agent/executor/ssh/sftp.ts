/**
 * The executor's file operations over the connection's one SFTP session. SFTP has no O_NOFOLLOW
 * and no mkdirat, so symlinks are looked for first (lstat, realpath): best effort.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { SFTPWrapper, Stats } from "ssh2";
import type { Executor, FileStat } from "../types.ts";
import type { SshConnection } from "./connection.ts";

/** SFTP read size: OpenSSH's sftp-server answers at most this much per request. */
const READ_CHUNK = 32 * 1024;
/** SFTP requests of one read or write outstanding at once (OpenSSH's sftp and scp keep 64). */
const IN_FLIGHT = 64;
/** SFTP status code for "no such file" (ENOENT, ENOTDIR and ELOOP all map to it in OpenSSH). */
const SFTP_NO_SUCH_FILE = 2;
/** ssh2 reports end of file as an error with this code (SSH_FX_EOF). */
const SFTP_EOF = 1;

type Callback<T> = (err: Error | undefined | null, value?: T) => void;
type FileOps = Omit<Executor, "run">;

const errno = (message: string, code: string) => Object.assign(new Error(message), { code });

/** Maps "no such file" to null, as the Executor contract wants. */
const orNull = <T>(promise: Promise<T>): Promise<T | null> =>
  promise.catch((err: { code?: unknown }) => {
    if (err.code === "ENOENT") {
      return null;
    }
    throw err;
  });

/** What each file operation needs: the session, a call wrapper and the two lookups. */
interface SftpContext {
  where: string;
  session(): Promise<SFTPWrapper>;
  /** Runs one SFTP call; "no such file" gets code ENOENT, other codes are kept. */
  call<T>(what: string, p: string, fn: (s: SFTPWrapper, cb: Callback<T>) => void): Promise<T>;
  lstat(p: string): Promise<Stats | null>;
  realpathOf(p: string): Promise<string | null>;
}

/** The file operations of {@link Executor} on the connection's SFTP session. */
export function createSftpOps(connection: SshConnection): FileOps {
  const { where } = connection;
  const call = async <T>(what: string, p: string, fn: (s: SFTPWrapper, cb: Callback<T>) => void): Promise<T> => {
    const s = await connection.sftp();
    return new Promise<T>((resolve, reject) =>
      fn(s, (err, value) => {
        if (err) {
          const code = (err as { code?: unknown }).code;
          reject(
            Object.assign(new Error(`${what} ${p} on ${where}: ${err.message}`), {
              code: code === SFTP_NO_SUCH_FILE ? "ENOENT" : code,
            }),
          );
        } else {
          resolve(value as T);
        }
      }),
    );
  };
  const ctx: SftpContext = {
    where,
    session: connection.sftp,
    call,
    lstat: (p) => orNull(call<Stats>("lstat", p, (s, cb) => s.lstat(p, cb))),
    realpathOf: (p) => orNull(call<string>("realpath", p, (s, cb) => s.realpath(p, cb))),
  };
  return {
    writeFile: (p, data, mode) => writeFile(ctx, p, data, mode),
    writeFileStream: (p, body, mode) => writeFileStream(ctx, p, body, mode),
    readFile: (p, range) => readFile(ctx, p, range),
    async stat(p): Promise<FileStat | null> {
      const s = await ctx.lstat(p);
      return s ? toFileStat(s) : null;
    },
    mkdir: (p, mode) => mkdir(ctx, p, mode),
    mkdirNoFollow: (p, mode) => mkdirNoFollow(ctx, p, mode),
    async realpath(p) {
      const resolved = await ctx.realpathOf(p);
      // Some servers resolve a missing last component anyway; "does not exist" must stay null.
      return resolved && (await ctx.lstat(resolved)) ? resolved : null;
    },
    rm: (p, opts) => rm(ctx, p, opts),
  };
}

async function writeFile(ctx: SftpContext, p: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = posix.join(posix.dirname(p), `.${posix.basename(p)}.${randomBytes(6).toString("hex")}.tmp`);
  const s = await ctx.session();
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  try {
    // `wx` = O_CREAT|O_EXCL: refuses to follow a pre-planted symlink at the temp name.
    const handle = await ctx.call<Buffer>("open", tmp, (x, cb) => x.open(tmp, "wx", { mode }, cb));
    try {
      const writer = pipelinedWriter(s, handle, `write ${tmp} on ${ctx.where}`);
      await writer.push(buf);
      await writer.end();
      // The server's umask may have narrowed the mode at open.
      await ctx.call<void>("chmod", tmp, (x, cb) => x.fchmod(handle, mode, (e) => cb(e)));
    } finally {
      await ctx.call<void>("close", tmp, (x, cb) => x.close(handle, (e) => cb(e))).catch(() => {});
    }
    // posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses to.
    await ctx.call<void>("rename", p, (x, cb) => x.ext_openssh_rename(tmp, p, (e) => cb(e)));
  } catch (err) {
    await new Promise<void>((resolve) => s.unlink(tmp, () => resolve()));
    throw err;
  }
}

/**
 * The streamed form of {@link writeFile}: the body's bytes go out as 32 KiB write requests, up to
 * {@link IN_FLIGHT} of them unanswered at once (a round trip per request would cap the speed at
 * 32 KiB per round trip), and more of the body is pulled only while there is room: no more than
 * that window is ever held.
 */
async function writeFileStream(
  ctx: SftpContext,
  p: string,
  body: AsyncIterable<Uint8Array>,
  mode = 0o600,
): Promise<void> {
  const tmp = posix.join(posix.dirname(p), `.${posix.basename(p)}.${randomBytes(6).toString("hex")}.tmp`);
  const s = await ctx.session();
  let handle: Buffer | undefined;
  let writer: ReturnType<typeof pipelinedWriter> | undefined;
  try {
    // `wx` = O_CREAT|O_EXCL: refuses to follow a pre-planted symlink at the temp name.
    handle = await ctx.call<Buffer>("open", tmp, (x, cb) => x.open(tmp, "wx", { mode }, cb));
    const h = handle;
    writer = pipelinedWriter(s, h, `write ${tmp} on ${ctx.where}`);
    for await (const chunk of body) {
      await writer.push(chunk);
    }
    await writer.end();
    // The server's umask may have narrowed the mode at open.
    await ctx.call<void>("chmod", tmp, (x, cb) => x.fchmod(h, mode, (e) => cb(e)));
    await ctx.call<void>("close", tmp, (x, cb) => x.close(h, (e) => cb(e)));
    handle = undefined;
    // posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses to.
    await ctx.call<void>("rename", p, (x, cb) => x.ext_openssh_rename(tmp, p, (e) => cb(e)));
  } catch (err) {
    // Let the writes in flight be answered before the temp is closed and removed.
    await writer?.end().catch(() => {});
    const h = handle;
    if (h) {
      await new Promise<void>((resolve) => s.close(h, () => resolve()));
    }
    await new Promise<void>((resolve) => s.unlink(tmp, () => resolve()));
    throw err;
  }
}

/**
 * Writes what `push` is given to `handle` from offset 0, in requests of {@link READ_CHUNK} (small
 * chunks are gathered, large ones sent as slices of themselves). `push` resolves once the chunk
 * is sent and fewer than {@link IN_FLIGHT} requests wait for an answer; `end` sends the rest and
 * resolves when every request is answered. The first failed request fails every later call,
 * its message prefixed with `what`.
 */
function pipelinedWriter(s: SFTPWrapper, handle: Buffer, what: string) {
  let offset = 0;
  let inFlight = 0;
  let failed: Error | undefined;
  let pending: Buffer | undefined;
  let pendingSize = 0;
  let wake: (() => void) | undefined;
  const send = (buf: Buffer) => {
    inFlight++;
    const position = offset;
    offset += buf.length;
    try {
      s.write(handle, buf, 0, buf.length, position, (err) => {
        inFlight--;
        if (err) {
          failed ??= err;
        }
        wake?.();
      });
    } catch (err) {
      inFlight--;
      failed ??= err as Error;
    }
  };
  /** Resolves once at most `most` requests are unanswered; rejects when one has failed. */
  const room = async (most: number) => {
    while (!failed && inFlight > most) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
    if (failed) {
      throw Object.assign(new Error(`${what}: ${failed.message}`), { code: (failed as { code?: unknown }).code });
    }
  };
  return {
    async push(chunk: Uint8Array) {
      let data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      while (data.length) {
        if (!pending && data.length >= READ_CHUNK) {
          send(data.subarray(0, READ_CHUNK));
          data = data.subarray(READ_CHUNK);
        } else {
          pending ??= Buffer.allocUnsafe(READ_CHUNK);
          const n = data.copy(pending, pendingSize);
          pendingSize += n;
          data = data.subarray(n);
          if (pendingSize === READ_CHUNK) {
            send(pending);
            pending = undefined;
            pendingSize = 0;
          }
        }
        await room(IN_FLIGHT - 1);
      }
    },
    async end() {
      if (pending && !failed) {
        send(pending.subarray(0, pendingSize));
      }
      pending = undefined;
      pendingSize = 0;
      await room(0);
    },
  };
}

async function readFile(
  ctx: SftpContext,
  p: string,
  range: { offset?: number; length?: number } = {},
): Promise<Buffer | null> {
  // SFTP open follows symlinks and has no O_NOFOLLOW: look first (best effort over SFTP).
  if ((await ctx.lstat(p))?.isSymbolicLink()) {
    return null;
  }
  const handle = await orNull(ctx.call<Buffer>("open", p, (s, cb) => s.open(p, "r", cb)));
  if (!handle) {
    return null;
  }
  try {
    const offset = range.offset ?? 0;
    const length =
      range.length ?? Math.max(0, (await ctx.call<Stats>("fstat", p, (s, cb) => s.fstat(handle, cb))).size - offset);
    const buf = Buffer.alloc(length);
    const got = await readPipelined(await ctx.session(), handle, buf, offset).catch((err: Error) => {
      throw Object.assign(new Error(`read ${p} on ${ctx.where}: ${err.message}`), {
        code: (err as { code?: unknown }).code,
      });
    });
    return buf.subarray(0, got);
  } finally {
    await ctx.call<void>("close", p, (s, cb) => s.close(handle, (e) => cb(e))).catch(() => {});
  }
}

/**
 * Fills `buf` from `position` with up to {@link IN_FLIGHT} reads outstanding, as OpenSSH's sftp
 * does: one read at a time waits a round trip per 32 KiB. Resolves how many bytes from the start
 * are the file's: the first end of file any read meets cuts the result there (a file that shrank
 * meanwhile gives a short result, never a padded one). A read answered short of its end of file
 * is asked again for the rest, as SFTP allows a server to answer short.
 */
function readPipelined(s: SFTPWrapper, handle: Buffer, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let end = buf.length;
    let next = 0;
    let inFlight = 0;
    let failed: Error | undefined;
    const settle = () => {
      if (inFlight === 0) {
        failed ? reject(failed) : resolve(end);
      }
    };
    const issue = (at: number, want: number) => {
      inFlight++;
      try {
        s.read(handle, buf, at, want, position + at, (err, n) => {
          inFlight--;
          if (err && (err as { code?: unknown }).code !== SFTP_EOF) {
            failed ??= err;
          } else if (!n) {
            end = Math.min(end, at);
          } else if (n < want && at + n < end) {
            issue(at + n, want - n);
          }
          fill();
          settle();
        });
      } catch (err) {
        inFlight--;
        failed ??= err as Error;
      }
    };
    const fill = () => {
      while (!failed && inFlight < IN_FLIGHT && next < end) {
        const want = Math.min(READ_CHUNK, end - next);
        issue(next, want);
        next += want;
      }
    };
    fill();
    settle();
  });
}

async function mkdir(ctx: SftpContext, p: string, mode = 0o700): Promise<void> {
  let current = "";
  for (const part of posix.resolve("/", p).split("/").filter(Boolean)) {
    current += `/${part}`;
    const dir = current;
    const st = await orNull(ctx.call<Stats>("stat", dir, (s, cb) => s.stat(dir, cb)));
    if (st) {
      if (!st.isDirectory()) {
        throw errno(`mkdir ${p} on ${ctx.where}: ${dir} is not a directory`, "ENOTDIR");
      }
      continue;
    }
    try {
      await ctx.call<void>("mkdir", dir, (s, cb) => s.mkdir(dir, { mode }, (e) => cb(e)));
    } catch (err) {
      // Another process may have made it in between.
      if (!(await ctx.lstat(dir))?.isDirectory()) {
        throw err;
      }
    }
  }
}

/**
 * The parent must resolve to itself (no symlink anywhere) before the mkdir, and the new
 * directory to itself after it; a component swapped for a symlink in between shows in the
 * second check, which fails with ELOOP (the caller refuses the job).
 */
async function mkdirNoFollow(ctx: SftpContext, p: string, mode = 0o700): Promise<boolean> {
  const absolute = posix.resolve("/", p);
  const parent = posix.dirname(absolute);
  if (absolute === "/") {
    throw errno(`mkdir ${p} on ${ctx.where}: no directory name`, "EINVAL");
  }
  const loop = (what: string) => errno(`mkdir ${p} on ${ctx.where}: ${what} goes through a symlink`, "ELOOP");
  if ((await ctx.realpathOf(parent)) !== parent) {
    throw loop(parent);
  }
  if (await ctx.lstat(absolute)) {
    return false;
  }
  try {
    await ctx.call<void>("mkdir", absolute, (s, cb) => s.mkdir(absolute, { mode }, (e) => cb(e)));
  } catch (err) {
    if (await ctx.lstat(absolute)) {
      return false;
    }
    throw err;
  }
  if ((await ctx.realpathOf(absolute)) !== absolute) {
    throw loop(absolute);
  }
  return true;
}

async function rm(ctx: SftpContext, p: string, opts: { recursive?: boolean } = {}): Promise<void> {
  const st = await ctx.lstat(p);
  if (!st) {
    return;
  }
  if (st.isDirectory()) {
    if (!opts.recursive) {
      throw errno(`rm ${p} on ${ctx.where}: is a directory`, "EISDIR");
    }
    const entries = await ctx.call<{ filename: string }[]>("readdir", p, (s, cb) => s.readdir(p, cb));
    for (const entry of entries) {
      if (entry.filename !== "." && entry.filename !== "..") {
        await rm(ctx, posix.join(p, entry.filename), opts);
      }
    }
    await orNull(ctx.call<void>("rmdir", p, (s, cb) => s.rmdir(p, (e) => cb(e))));
    return;
  }
  await orNull(ctx.call<void>("unlink", p, (s, cb) => s.unlink(p, (e) => cb(e))));
}

function toFileStat(s: Stats): FileStat {
  return {
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
    isSymbolicLink: s.isSymbolicLink(),
    size: s.size,
    mode: s.mode & 0o7777,
    mtimeMs: s.mtime * 1000,
  };
}
