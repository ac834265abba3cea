/**
 * Answers a browse of a job directory (list_dir, read_file asks): the gateway's fields are checked
 * again here, the directory is derived from them (never taken as a path), and the executor walks
 * the path inside it without following any symlink (Executor.browse: descriptors on this machine,
 * `find -P`/`dd iflag=nofollow` over SSH or through sudo), within the read rights of the job's account.
 */
import { posix } from "node:path";
import { MAX_ANSWER_REASON, ListDirAsk, ReadFileAsk } from "../schemas/asks.ts";
import { BROWSE_LIMITS, type BrowseRefusal, browseSegments } from "../schemas/browse.ts";
import { USER_NAME } from "../schemas/patterns.ts";
import type { AgentContext } from "./context.ts";
import { type BrowseAccess, BrowseRefused, type JobDirBrowser } from "./executor/types.ts";
import type { AgentAsk, AskAnswer } from "./gateway-api.ts";
import { IdentityRefusal } from "./identity/guard.ts";
import { jobDirName } from "./paths.ts";

type BrowseAsk = Extract<AgentAsk, { kind: "list_dir" | "read_file" }>;

const refused = (kind: BrowseRefusal["refused"], reason: string): AskAnswer => ({
  ok: true,
  value: { refused: kind, reason: reason.slice(0, MAX_ANSWER_REASON) },
});

/**
 * The browser for `owner`'s job and the account whose rights a read must stay within, or why this
 * agent cannot browse. A sudo-mode agent browses as the account `owner` maps to (through sudo, so
 * the kernel decides, as for an agent that runs as the job's account); a site agent (root) reads
 * for the job's account and checks that account's permission bits on everything it opens.
 */
async function browserFor(
  ctx: AgentContext,
  owner: string,
): Promise<{ browser: JobDirBrowser; access: BrowseAccess } | string> {
  if (ctx.sudo) {
    const as = ctx.sudo.as(owner);
    if (!as?.executor.browse) {
      return "this agent acts for users through sudo, and the mapping names no account for this job's owner";
    }
    return { browser: as.executor.browse, access: null };
  }
  if (!ctx.executor.browse) {
    return "this agent's executor cannot walk a path without following symlinks";
  }
  const runAs = ctx.identity ? await ctx.identity.check(owner) : null;
  const access = runAs && runAs.uid !== process.getuid?.() ? { uid: runAs.uid, gid: runAs.gid } : null;
  return { browser: ctx.executor.browse, access };
}

/** The listing or the bytes, or why the path (or this agent) does not allow them. */
export async function answerBrowse(ctx: AgentContext, raw: BrowseAsk): Promise<AskAnswer> {
  const parsed = (raw.kind === "list_dir" ? ListDirAsk : ReadFileAsk).safeParse(raw);
  if (!parsed.success || !USER_NAME.test(raw.owner)) {
    return { ok: false, reason: "the ask is malformed (owner, job id, attempt or path)" };
  }
  const ask = parsed.data as BrowseAsk;
  const found = await browserFor(ctx, ask.owner);
  if (typeof found === "string") {
    return refused("unsupported", found);
  }
  const { browser, access } = found;
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
    if (err instanceof IdentityRefusal) {
      return refused("unsupported", err.message); // sudo no longer acts as this account
    }
    throw err;
  }
}
