/**
 * Brings a job's declared outputs back after it ends: finds what the spec's globs match inside the
 * job directory without following any symlink, then streams each regular file to the gateway, read
 * once and hashed on the way, with its sha256 after the bytes; the gateway hashes what arrives into
 * its blob store and lists it only when the two agree. What cannot be brought back is named, never
 * dropped silently. The uploads run beside the tracking cycle (output-worker.ts).
 */
import { type Hash, createHash } from "node:crypto";
import { posix } from "node:path";
import {
  MAX_OUTPUT_DEPTH,
  MAX_OUTPUT_FILES,
  MAX_OUTPUT_FILE_BYTES,
  MAX_OUTPUT_TOTAL_BYTES,
  globMatcher,
} from "../schemas/outputs.ts";
import { RELATIVE_PATH } from "../schemas/patterns.ts";
import type { AgentContext } from "./context.ts";
import { crashPoint } from "./context.ts";
import type { Executor, FileStat } from "./executor/types.ts";
import { IdentityRefusal } from "./identity/guard.ts";
import { SUDO_FIND } from "./identity/sudo.ts";
import type { TrackedJob } from "./state.ts";

/** Bytes read (and sent) at a time: a 200 MiB output never sits in memory whole. */
const CHUNK_BYTES = 8 * 1024 * 1024;
const TOOLS_ENV = { PATH: "/usr/bin:/bin" };

export type Entry = { type: "f" | "d" | "l" | "other"; size: number; uid: number; path: string };
export type OutputPlan = { files: { path: string; size: number }[]; skipped: { path: string; why: string }[] };

/**
 * Every entry under `jobDir`, never descending through a symlink (`find -P`), as
 * `type\tsize\tuid\trelative path\0`. Null with a sentence when the directory cannot be listed.
 * `find` is the tool's path where it must be absolute (sudoers matches commands by path).
 */
export async function listJobDir(executor: Executor, jobDir: string, find = "find"): Promise<Entry[] | string> {
  const result = await executor.run(
    find,
    ["-P", jobDir, "-mindepth", "1", "-maxdepth", String(MAX_OUTPUT_DEPTH), "-printf", "%y\\t%s\\t%U\\t%P\\0"],
    { env: TOOLS_ENV, timeoutMs: 120_000 },
  );
  if (result.code !== 0) {
    return `the job directory could not be listed: ${result.stderr.trim().split("\n")[0] || `find exited ${result.code}`}`;
  }
  const entries: Entry[] = [];
  for (const record of result.stdout.split("\0")) {
    const [type, size, uid, ...rest] = record.split("\t");
    if (!type || rest.length === 0) {
      continue;
    }
    entries.push({
      type: type === "f" || type === "d" || type === "l" ? type : "other",
      size: Number(size),
      uid: Number(uid),
      path: rest.join("\t"),
    });
  }
  return entries;
}

/**
 * Which listed entries the globs bring back, and which matches are skipped and why. `ownerUid` is
 * the account the job ran as when the agent reads with more rights than it (a root site agent):
 * a file in the job directory that this account does not own (a hard link to a file only root may
 * read) is skipped, so the agent never uploads anything the job's user could not have read.
 */
export function planOutputs(globs: string[], entries: Entry[], ownerUid: number | null): OutputPlan {
  const matchers = globs.map(globMatcher);
  const plan: OutputPlan = { files: [], skipped: [] };
  let total = 0;
  for (const entry of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    if (entry.type === "d" || !matchers.some((m) => m(entry.path))) {
      continue;
    }
    const skip = (why: string) => plan.skipped.push({ path: entry.path, why });
    if (!RELATIVE_PATH.test(entry.path)) {
      skip("its name has characters outside letters, digits and _.+-");
    } else if (entry.type === "l") {
      skip("a symlink (never followed)");
    } else if (entry.type !== "f") {
      skip("not a regular file");
    } else if (ownerUid !== null && entry.uid !== ownerUid) {
      skip(`owned by uid ${entry.uid}, not by the job's account`);
    } else if (entry.size > MAX_OUTPUT_FILE_BYTES) {
      skip(`larger than ${MAX_OUTPUT_FILE_BYTES} bytes`);
    } else if (plan.files.length >= MAX_OUTPUT_FILES) {
      skip(`more than ${MAX_OUTPUT_FILES} files match`);
    } else if (total + entry.size > MAX_OUTPUT_TOTAL_BYTES) {
      skip(`the outputs would exceed ${MAX_OUTPUT_TOTAL_BYTES} bytes in all`);
    } else {
      total += entry.size;
      plan.files.push({ path: entry.path, size: entry.size });
    }
  }
  return plan;
}

/**
 * Each component of `rel` below `jobDir` is looked at again just before reading (lstat): a
 * directory, never a symlink, and the last one a regular file, whose stat is answered (the read is
 * checked against it). The read itself opens with O_NOFOLLOW (Executor.readFile).
 */
async function stillConfined(executor: Executor, jobDir: string, rel: string): Promise<string | FileStat> {
  const segments = rel.split("/");
  let current = jobDir;
  let last: FileStat | undefined;
  for (const [i, segment] of segments.entries()) {
    current = posix.join(current, segment);
    const st = await executor.stat(current);
    last = st ?? undefined;
    if (!st) {
      return "vanished before it was read";
    }
    if (st.isSymbolicLink) {
      return "a symlink (never followed)";
    }
    if (i < segments.length - 1 ? !st.isDirectory : !st.isFile) {
      return "changed into something else before it was read";
    }
  }
  return last!;
}

/** What a read may not see change under it: a rewrite in place shows in mtime (size aside). */
const sameFile = (a: FileStat, b: FileStat) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.isFile && b.isFile;

/**
 * The file's bytes, read once and hashed as they go. Before the last byte leaves, the file is
 * looked at again: one written to while it was read (same size or not) throws, so the upload breaks
 * off before the gateway has all of it and nothing torn is ever listed. The check rests on size and
 * mtime, whose grain over SFTP and through sudo's `stat` is a second: a same-size rewrite within the
 * second the file was read is not seen there (locally it is to the nanosecond).
 */
async function* readOnce(
  executor: Executor,
  path: string,
  size: number,
  before: FileStat,
  hash: Hash,
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  if (before.size !== size) {
    throw new OutputUnreadable("it changed while it was read");
  }
  let held: Buffer | undefined;
  for (let offset = 0; offset < size; offset += CHUNK_BYTES) {
    signal?.throwIfAborted();
    const want = Math.min(CHUNK_BYTES, size - offset);
    const bytes = await executor.readFile(path, { offset, length: want });
    if (!bytes) {
      throw new OutputUnreadable("it became unreadable (gone or replaced by a symlink)");
    }
    if (bytes.length < want) {
      throw new OutputUnreadable("it shrank while it was read");
    }
    hash.update(bytes);
    if (held) {
      yield held;
    }
    held = bytes;
  }
  const after = await executor.stat(path);
  if (!after || !sameFile(before, after)) {
    throw new OutputUnreadable("it changed while it was read");
  }
  if (held) {
    yield held;
  }
}

/** A reason an output cannot be brought back as it is now: it is skipped and named, not retried. */
class OutputUnreadable extends Error {}

export type OutputsOutcome =
  /** Every match was uploaded or is definitively skipped (named in `skipped`). */
  | { done: true; uploaded: number; skipped: { path: string; why: string }[] }
  /** The gateway could not take them now: keep the job, try again next cycle. */
  | { done: false; message: string };

/**
 * Brings back `job`'s outputs. Uploads are idempotent by job, path and sha256 (the gateway keeps
 * one row per path), so an agent killed midway simply uploads again after its restart.
 */
export async function bringBackOutputs(ctx: AgentContext, job: TrackedJob): Promise<OutputsOutcome> {
  const globs = job.outputs ?? [];
  if (globs.length === 0) {
    return { done: true, uploaded: 0, skipped: [] };
  }
  const upload = ctx.api.uploadOutput;
  if (!upload) {
    return { done: true, uploaded: 0, skipped: [{ path: globs.join(" "), why: "this agent cannot upload outputs" }] };
  }
  // A sudo-mode agent lists as the job's account: the service account cannot enter its 0700 directory.
  const lister = ctx.sudo ? ctx.sudo.as(job.owner)?.executor : ctx.executor;
  if (!lister) {
    return {
      done: true,
      uploaded: 0,
      skipped: [{ path: globs.join(" "), why: "the mapping names no account for the job's owner" }],
    };
  }
  const listed = await listJobDir(lister, job.jobDir, ctx.sudo ? SUDO_FIND : "find").catch((err: unknown) => {
    if (err instanceof IdentityRefusal) {
      return `the job directory could not be listed: ${err.message}`;
    }
    throw err;
  });
  if (typeof listed === "string") {
    return { done: true, uploaded: 0, skipped: [{ path: globs.join(" "), why: listed }] };
  }
  // A site agent reading as root checks ownership itself; an agent that runs as the job's user
  // (self, personal, or sudo reads) already reads with the user's own rights.
  const runAs = ctx.identity && !ctx.sudo ? await ctx.identity.check(job.owner).catch(() => null) : null;
  const plan = planOutputs(globs, listed, runAs ? runAs.uid : null);
  const skipped = [...plan.skipped];
  let uploaded = 0;
  for (const file of plan.files) {
    if (ctx.stopping?.aborted) {
      return { done: false, message: "the agent is stopping; its next start uploads the rest" };
    }
    const full = posix.join(job.jobDir, file.path);
    const unsafe = await stillConfined(ctx.executor, job.jobDir, file.path);
    if (typeof unsafe === "string") {
      skipped.push({ path: file.path, why: unsafe });
      continue;
    }
    const before = unsafe;
    const hash = createHash("sha256");
    let sent = 0;
    let unreadable: string | undefined;
    const body = (async function* () {
      try {
        for await (const bytes of readOnce(ctx.executor, full, file.size, before, hash, ctx.stopping)) {
          sent += bytes.length;
          if (sent > file.size / 2) {
            crashPoint(ctx, "mid-output-upload");
          }
          yield bytes;
        }
      } catch (err) {
        unreadable = err instanceof OutputUnreadable ? err.message : undefined;
        throw err;
      }
    })();
    const result = await upload({
      jobId: job.jobId,
      epoch: job.epoch,
      path: file.path,
      size: file.size,
      body,
      sha256: () => hash.digest("hex"),
      signal: ctx.stopping,
    });
    if (unreadable) {
      skipped.push({ path: file.path, why: unreadable });
      continue;
    }
    if (!result.ok) {
      if (result.retryable || result.status === undefined) {
        return { done: false, message: `${file.path}: ${result.message}` };
      }
      skipped.push({ path: file.path, why: `the gateway refused it: ${result.message}` });
      continue;
    }
    uploaded++;
  }
  return { done: true, uploaded, skipped };
}

/**
 * The sentence a terminal reason carries about outputs that did not come back.
 * @example outputsNote([{ path: "a.json", why: "a symlink (never followed)" }])
 * // => "1 output not brought back: a.json (a symlink (never followed))"
 */
export function outputsNote(skipped: { path: string; why: string }[]): string | undefined {
  if (skipped.length === 0) {
    return undefined;
  }
  const shown = skipped
    .slice(0, 10)
    .map((s) => `${s.path} (${s.why})`)
    .join(", ");
  const more = skipped.length > 10 ? `, and ${skipped.length - 10} more` : "";
  return `${skipped.length} output${skipped.length === 1 ? "" : "s"} not brought back: ${shown}${more}`;
}
