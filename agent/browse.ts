/**
 * Answers a browse of a job directory (list_dir, read_file asks): the gateway's fields are checked
 * again here, the directory is derived from them (never taken as a path), and the executor walks
 * the path inside it without following any symlink (Executor.browse), within the read rights of
 * the job's account.
 */
import { posix } from "node:path";
import { MAX_ANSWER_REASON, ListDirAsk, ReadFileAsk } from "../schemas/asks.ts";
import { BROWSE_LIMITS, type BrowseRefusal, browseSegments } from "../schemas/browse.ts";
import { USER_NAME } from "../schemas/patterns.ts";
import type { AgentContext } from "./context.ts";
import { type BrowseAccess, BrowseRefused, type JobDirBrowser } from "./executor/types.ts";
import type { AgentAsk, AskAnswer } from "./gateway-api.ts";
import { jobDirName } from "./paths.ts";

type BrowseAsk = Extract<AgentAsk, { kind: "list_dir" | "read_file" }>;

const refused = (kind: BrowseRefusal["refused"], reason: string): AskAnswer => ({
  ok: true,
  value: { refused: kind, reason: reason.slice(0, MAX_ANSWER_REASON) },
});

/** Why this agent cannot browse at all, or its browser. */
function browserOf(ctx: AgentContext): JobDirBrowser | string {
  if (ctx.sudo) {
    // Its sudoers rule names the few tools it may run as a user, and none lists a directory.
    return "this agent acts for users through sudo, whose rule allows no tool that lists a directory without following symlinks";
  }
  return (
    ctx.executor.browse ??
    "this agent reaches its login node over SSH, where SFTP cannot walk a path without following symlinks; only an agent running on the login node can browse"
  );
}

/**
 * The account whose rights a read must stay within. A site agent (root) reads for the job's account
 * and checks that account's permission bits on everything it opens; an agent that runs as the job's
 * account itself leaves that to the kernel.
 */
async function accessFor(ctx: AgentContext, owner: string): Promise<BrowseAccess> {
  const runAs = ctx.identity ? await ctx.identity.check(owner) : null;
  return runAs && runAs.uid !== process.getuid?.() ? { uid: runAs.uid, gid: runAs.gid } : null;
}

/** The listing or the bytes, or why the path (or this agent) does not allow them. */
export async function answerBrowse(ctx: AgentContext, raw: BrowseAsk): Promise<AskAnswer> {
  const parsed = (raw.kind === "list_dir" ? ListDirAsk : ReadFileAsk).safeParse(raw);
  if (!parsed.success || !USER_NAME.test(raw.owner)) {
    return { ok: false, reason: "the ask is malformed (owner, job id, attempt or path)" };
  }
  const ask = parsed.data as BrowseAsk;
  const browser = browserOf(ctx);
  if (typeof browser === "string") {
    return refused("unsupported", browser);
  }
  const access = await accessFor(ctx, ask.owner);
  const root = ctx.roots.real[0];
  if (!root) {
    return { ok: false, reason: "this agent has no shared root" };
  }
  const dir = posix.join(root, ask.owner, jobDirName(ask.jobId, ask.attempt));
  const segments = browseSegments(ask.path);
  try {
    if (ask.kind === "list_dir") {
      const { entries, truncated } = await browser.list(dir, segments, access, BROWSE_LIMITS.entries);
      const listed = entries.map(({ mtimeMs, ...e }) => ({ ...e, mtime: new Date(mtimeMs).toISOString() }));
      return { ok: true, value: { path: ask.path, entries: listed, truncated } };
    }
    const bytes = Math.min(ask.bytes ?? BROWSE_LIMITS.defaultBytes, BROWSE_LIMITS.bytes);
    const slice = await browser.read(dir, segments, access, { from: ask.from, bytes });
    return {
      ok: true,
      value: {
        path: ask.path,
        size: slice.size,
        offset: slice.offset,
        data: slice.data.toString("base64"),
        truncated: slice.data.length < slice.size,
      },
    };
  } catch (err) {
    if (err instanceof BrowseRefused) {
      return refused("path", err.message);
    }
    throw err;
  }
}
