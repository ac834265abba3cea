/**
 * The agent's side of browsing, on a real directory: the O_NOFOLLOW walk (agent/executor/browse-local.ts)
 * and the answer built from an ask (agent/browse.ts), including asks a compromised gateway could send
 * and agents that cannot browse (SSH, sudo).
 */
import { spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { answerBrowse } from "../../agent/browse.ts";
import type { AgentContext } from "../../agent/context.ts";
import { localBrowser } from "../../agent/executor/browse-local.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { AgentAsk } from "../../agent/gateway-api.ts";

const JOB = `job_${"a".repeat(26)}`;
let root: string;
let dir: string;

beforeEach(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "sg-browse-")));
  dir = join(root, "alice", JOB);
  mkdirSync(join(dir, "sub", "deep"), { recursive: true });
  writeFileSync(join(dir, "sub", "f.txt"), "0123456789");
  symlinkSync("/etc/passwd", join(dir, "passwd"));
  symlinkSync("/", join(dir, "slash"));
  symlinkSync("sub", join(dir, "sub-link"));
});

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => "no refusal",
    (err: Error) => `${err.name}: ${err.message}`,
  );

describe("the O_NOFOLLOW walk", () => {
  it("refuses a symlink anywhere on the path, as a directory or as a file", async () => {
    expect(await refusal(localBrowser.read(dir, ["passwd"], null, { from: "head", bytes: 10 }))).toBe(
      'BrowseRefused: "passwd" is a symlink; symlinks are listed, never followed',
    );
    expect(await refusal(localBrowser.list(dir, ["slash"], null, 10))).toContain('"slash" is a symlink');
    expect(await refusal(localBrowser.list(dir, ["slash", "etc"], null, 10))).toContain('"slash" is a symlink');
    expect(await refusal(localBrowser.read(dir, ["sub-link", "f.txt"], null, { from: "head", bytes: 1 }))).toContain(
      '"sub-link" is a symlink',
    );
  });

  it("refuses a job directory that is itself a symlink", async () => {
    const other = join(root, "alice", `job_${"b".repeat(26)}`);
    symlinkSync("/etc", other);
    expect(await refusal(localBrowser.list(other, [], null, 10))).toContain("the job directory is a symlink");
  });

  it("reads the ends of a file and cuts a listing at the cap, sorted", async () => {
    expect(await localBrowser.read(dir, ["sub", "f.txt"], null, { from: "tail", bytes: 3 })).toMatchObject({
      size: 10,
      offset: 7,
      data: Buffer.from("789"),
    });
    expect(await localBrowser.read(dir, ["sub", "f.txt"], null, { from: "head", bytes: 100 })).toMatchObject({
      size: 10,
      offset: 0,
      data: Buffer.from("0123456789"),
    });
    const cut = await localBrowser.list(dir, [], null, 2);
    expect(cut).toMatchObject({ truncated: true, entries: [{ name: "passwd", type: "symlink" }, { name: "slash" }] });
  });

  it("stays within the job account's permission bits when the agent reads for another account", async () => {
    const stranger = { uid: 54_321, gid: 54_321 };
    chmodSync(join(dir, "sub", "f.txt"), 0o600);
    chownSync(join(dir, "sub", "f.txt"), 0, 0);
    chmodSync(dir, 0o755);
    chmodSync(join(dir, "sub"), 0o755);
    expect(await refusal(localBrowser.read(dir, ["sub", "f.txt"], stranger, { from: "head", bytes: 1 }))).toContain(
      "not readable by the job's account",
    );
    chmodSync(join(dir, "sub", "f.txt"), 0o604);
    expect((await localBrowser.read(dir, ["sub", "f.txt"], stranger, { from: "head", bytes: 1 })).data).toEqual(
      Buffer.from("0"),
    );
    chmodSync(join(dir, "sub"), 0o700);
    expect(await refusal(localBrowser.list(dir, ["sub"], stranger, 10))).toContain("not readable by the job's account");
    chownSync(join(dir, "sub"), stranger.uid, stranger.gid);
    expect((await localBrowser.list(dir, ["sub"], stranger, 10)).entries.map((e) => e.name)).toEqual(["deep", "f.txt"]);
  });
});

describe("the walk against a symlink swapped in while it runs", () => {
  it("never reads through a directory a loop keeps replacing with a symlink to /etc", async () => {
    writeFileSync(join(dir, "sub", "passwd"), "mine");
    const loop = spawn(
      "bash",
      ["-c", 'cd "$1" && while :; do mv sub hold; ln -s /etc sub; rm sub; mv hold sub; done', "swap", dir],
      { stdio: "ignore" },
    );
    const seen = new Map<string, number>();
    try {
      const until = Date.now() + 1_500;
      while (Date.now() < until) {
        const got = await localBrowser.read(dir, ["sub", "passwd"], null, { from: "head", bytes: 64 }).then(
          (r) => r.data.toString(),
          (err: Error) => err.message.replace(/^.*? (is|does)/, "$1"),
        );
        seen.set(got, (seen.get(got) ?? 0) + 1);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      loop.kill("SIGKILL");
    }
    // Only the job's own file, or a refusal: never a byte of /etc/passwd.
    expect(
      [...seen.keys()].every((k) => k === "mine" || !k.includes("root:")),
      JSON.stringify([...seen]),
    ).toBe(true);
    expect(seen.get("mine") ?? 0).toBeGreaterThan(0);
    expect([...seen.keys()].some((k) => k.includes("symlink"))).toBe(true);
  });
});

describe("answering a browse ask", () => {
  const ctx = (extra: Partial<AgentContext> = {}) =>
    ({
      executor: createLocalExecutor({ spawners: 0 }),
      roots: { declared: [root], real: [root] },
      ...extra,
    }) as AgentContext;
  const ask = (extra: Record<string, unknown> = {}) =>
    ({
      id: `ask_${"0".repeat(26)}`,
      kind: "list_dir",
      owner: "alice",
      jobId: JOB,
      attempt: 1,
      path: "",
      ...extra,
    }) as AgentAsk;

  it("lists and reads the job directory derived from owner, job id and attempt", async () => {
    const listed = await answerBrowse(ctx(), ask({ path: "sub" }) as never);
    expect(listed).toMatchObject({ ok: true, value: { path: "sub", truncated: false } });
    expect((listed as unknown as { value: { entries: { name: string }[] } }).value.entries.map((e) => e.name)).toEqual([
      "deep",
      "f.txt",
    ]);
    const read = await answerBrowse(
      ctx(),
      ask({ kind: "read_file", path: "sub/f.txt", from: "head", bytes: 4 }) as never,
    );
    expect(read).toEqual({
      ok: true,
      value: { path: "sub/f.txt", size: 10, offset: 0, data: Buffer.from("0123").toString("base64"), truncated: true },
    });
  });

  it("refuses what a compromised gateway could send, before touching the disk", async () => {
    for (const bad of [
      { path: "../alice" },
      { path: "/etc" },
      { owner: "../root" },
      { jobId: "../../etc" },
      { attempt: 0 },
      { kind: "read_file", path: "sub/f.txt", from: "middle", bytes: 1 },
      { kind: "read_file", path: "sub/f.txt", from: "head", bytes: 10_000_000 },
    ]) {
      expect(await answerBrowse(ctx(), ask(bad) as never), JSON.stringify(bad)).toMatchObject({ ok: false });
    }
  });

  it("says why it cannot browse: an executor with no browser, or an owner sudo has no account for", async () => {
    const { browse: _, ...none } = createLocalExecutor({ spawners: 0 });
    expect(await answerBrowse(ctx({ executor: none }), ask() as never)).toMatchObject({
      ok: true,
      value: { refused: "unsupported", reason: expect.stringContaining("without following symlinks") },
    });
    const sudo = { as: () => null } as AgentContext["sudo"];
    expect(await answerBrowse(ctx({ sudo }), ask() as never)).toMatchObject({
      ok: true,
      value: { refused: "unsupported", reason: expect.stringContaining("sudo") },
    });
  });
});
