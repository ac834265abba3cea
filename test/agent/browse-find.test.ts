/**
 * Browsing with commands run as the job's account (agent/executor/browse-find.ts), the way sudo-mode
 * and SSH agents browse: real GNU find and dd on a real directory, run directly (as root, with the
 * job account's permission bits checked) and through this machine's real sudo as a POSIX user.
 */
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { answerBrowse } from "../../agent/browse.ts";
import type { AgentContext } from "../../agent/context.ts";
import { findBrowser } from "../../agent/executor/browse-find.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { AgentAsk } from "../../agent/gateway-api.ts";
import { sudoExecutor } from "../../agent/identity/sudo.ts";
import { ensurePosixUser } from "../e2e/posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const JOB = `job_${"a".repeat(26)}`;
const local = createLocalExecutor();
const browser = findBrowser(local.run);
let root: string;
let dir: string;

beforeEach(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), "sg-browse-find-")));
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

describe("the find -P walk", () => {
  it("refuses a symlink anywhere on the path, as a directory or as a file", async () => {
    expect(await refusal(browser.read(dir, ["passwd"], null, { from: "head", bytes: 10 }))).toBe(
      'BrowseRefused: "passwd" is a symlink; symlinks are listed, never followed',
    );
    expect(await refusal(browser.list(dir, ["slash"], null, 10))).toContain('"slash" is a symlink');
    expect(await refusal(browser.list(dir, ["slash", "etc"], null, 10))).toContain('"slash" is a symlink');
    expect(await refusal(browser.read(dir, ["slash", "etc", "passwd"], null, { from: "head", bytes: 9 }))).toContain(
      '"slash" is a symlink',
    );
    expect(await refusal(browser.read(dir, ["sub-link", "f.txt"], null, { from: "head", bytes: 1 }))).toContain(
      '"sub-link" is a symlink',
    );
    expect(await refusal(browser.read(dir, ["sub"], null, { from: "head", bytes: 1 }))).toContain("a directory");
    expect(await refusal(browser.list(dir, ["sub", "f.txt"], null, 1))).toContain("not a directory");
    expect(await refusal(browser.list(dir, ["nope"], null, 1))).toContain('"nope" does not exist');
  });

  it("refuses a job directory, or the owner's directory above it, that is a symlink", async () => {
    const other = join(root, "alice", `job_${"b".repeat(26)}`);
    symlinkSync("/etc", other);
    expect(await refusal(browser.list(other, [], null, 10))).toContain("the job directory is a symlink");
    symlinkSync(join(root, "alice"), join(root, "mallory"));
    expect(await refusal(browser.list(join(root, "mallory", JOB), [], null, 10))).toContain("is a symlink");
  });

  it("refuses '..', '.', empty and absolute components itself, whatever the caller checked", async () => {
    for (const segments of [[".."], ["sub", "..", ".."], ["."], [""], ["/etc"], ["a\0b"]]) {
      expect(await refusal(browser.list(dir, segments, null, 10)), JSON.stringify(segments)).toContain(
        "not a component inside the job directory",
      );
    }
    expect(await refusal(browser.list(`${dir}/../..`, [], null, 10))).toContain("normalized absolute path");
  });

  it("lists as lstat sees it, sorted and cut at the cap, and reads the ends of a file byte for byte", async () => {
    const odd = "we*ird ?[name]\tx";
    writeFileSync(join(dir, odd), Buffer.from([0, 255, 10, 13]));
    mkdirSync(join(dir, "[s]"));
    writeFileSync(join(dir, "[s]", "in"), "glob chars are literal");
    const all = await browser.list(dir, [], null, 100);
    expect(all.entries.map((e) => [e.name, e.type])).toEqual([
      ["[s]", "dir"],
      ["passwd", "symlink"],
      ["slash", "symlink"],
      ["sub", "dir"],
      ["sub-link", "symlink"],
      [odd, "file"],
    ]);
    expect(all.entries.at(-1)).toMatchObject({ size: 4 });
    expect(Math.abs(all.entries[0]!.mtimeMs - Date.now())).toBeLessThan(60_000);
    expect(await browser.list(dir, [], null, 2)).toMatchObject({
      truncated: true,
      entries: [{ name: "[s]" }, { name: "passwd" }],
    });
    expect((await browser.list(dir, ["[s]"], null, 10)).entries.map((e) => e.name)).toEqual(["in"]);
    expect((await browser.read(dir, [odd], null, { from: "head", bytes: 100 })).data).toEqual(
      Buffer.from([0, 255, 10, 13]),
    );
    expect(await browser.read(dir, ["sub", "f.txt"], null, { from: "tail", bytes: 3 })).toMatchObject({
      size: 10,
      offset: 7,
      data: Buffer.from("789"),
    });
    writeFileSync(join(dir, "empty"), "");
    expect(await browser.read(dir, ["empty"], null, { from: "tail", bytes: 3 })).toMatchObject({ size: 0 });
  });

  it("reads no FIFO and does not hang on one", async () => {
    execFileSync("mkfifo", [join(dir, "fifo")]);
    const t0 = Date.now();
    expect(await refusal(browser.read(dir, ["fifo"], null, { from: "head", bytes: 1 }))).toContain(
      "not a regular file",
    );
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it("stays within the job account's permission bits when it runs with more rights", async () => {
    const stranger = { uid: 54_321, gid: 54_321 };
    chmodSync(join(dir, "sub", "f.txt"), 0o600);
    chownSync(join(dir, "sub", "f.txt"), 0, 0);
    chmodSync(dir, 0o755);
    chmodSync(join(dir, "sub"), 0o755);
    expect(await refusal(browser.read(dir, ["sub", "f.txt"], stranger, { from: "head", bytes: 1 }))).toContain(
      "not readable by the job's account",
    );
    chmodSync(join(dir, "sub", "f.txt"), 0o604);
    expect((await browser.read(dir, ["sub", "f.txt"], stranger, { from: "head", bytes: 1 })).data).toEqual(
      Buffer.from("0"),
    );
    chmodSync(join(dir, "sub"), 0o700);
    expect(await refusal(browser.list(dir, ["sub"], stranger, 10))).toContain("not readable by the job's account");
    chownSync(join(dir, "sub"), stranger.uid, stranger.gid);
    expect((await browser.list(dir, ["sub"], stranger, 10)).entries.map((e) => e.name)).toEqual(["deep", "f.txt"]);
  });
});

describe("the find -P walk against a symlink swapped in while it runs", () => {
  it.each([
    ["a parent directory", "sub", "/etc"],
    ["the file itself", "sub/passwd", "/etc/passwd"],
  ])(
    "never reads through %s a loop keeps replacing with a symlink",
    async (_, swapped, target) => {
      writeFileSync(join(dir, "sub", "passwd"), "mine");
      const loop = spawn(
        "bash",
        [
          "-c",
          'cd "$1" && while :; do mv "$2" "$2.hold"; ln -s "$3" "$2"; rm "$2"; mv "$2.hold" "$2"; sleep 0.05; done',
          "swap",
          dir,
          swapped,
          target,
        ],
        { stdio: "ignore" },
      );
      const seen = new Map<string, number>();
      try {
        const until = Date.now() + 4_000;
        while (Date.now() < until) {
          const got = await browser.read(dir, ["sub", "passwd"], null, { from: "head", bytes: 64 }).then(
            (r) => r.data.toString(),
            (err: Error) => err.message.replace(/^.*? (is|does|changed)/, "$1"),
          );
          seen.set(got, (seen.get(got) ?? 0) + 1);
        }
      } finally {
        loop.kill("SIGKILL");
      }
      // Only the job's own file, or a refusal: never a byte of /etc/passwd. (The pause in the loop
      // leaves the real file in place part of the time, so reads of it succeed too.)
      expect(
        [...seen.keys()].every((k) => k === "mine" || !k.includes("root:")),
        JSON.stringify([...seen]),
      ).toBe(true);
      expect(seen.get("mine") ?? 0, JSON.stringify([...seen])).toBeGreaterThan(0);
    },
    20_000,
  );
});

describe("browsing through sudo as the job's account", () => {
  const alice = ensurePosixUser("sg-alice");
  const bob = ensurePosixUser("sg-bob");
  const asAlice = sudoExecutor(local, "sg-alice", { account: "sg-svc" });

  const aliceJob = () => {
    const shared = varTmpDir("sg-browse-sudo-");
    chmodSync(shared, 0o1777);
    const jobDir = join(shared, "alice", JOB);
    mkdirSync(join(jobDir, "results"), { recursive: true });
    writeFileSync(join(jobDir, "results", "a.txt"), "hello alice\n");
    symlinkSync("/etc/passwd", join(jobDir, "passwd-link"));
    symlinkSync("/etc", join(jobDir, "etc-link"));
    // Bob's private file, in Alice's directory (as root could put it there): not Alice's to read.
    writeFileSync(join(jobDir, "bobs.txt"), "bob's secret", { mode: 0o600 });
    execFileSync("chown", ["-R", "-h", `${alice.uid}:${alice.gid}`, join(shared, "alice")]);
    chownSync(join(jobDir, "bobs.txt"), bob.uid, bob.gid);
    chmodSync(join(shared, "alice"), 0o700);
    chmodSync(jobDir, 0o700);
    return { shared, jobDir };
  };

  it("lists and reads Alice's 0700 job directory as Alice; symlinks and Bob's 0600 file stay shut", async () => {
    const { jobDir } = aliceJob();
    const b = asAlice.browse!;
    expect((await b.list(jobDir, [], null, 10)).entries.map((e) => [e.name, e.type])).toEqual([
      ["bobs.txt", "file"],
      ["etc-link", "symlink"],
      ["passwd-link", "symlink"],
      ["results", "dir"],
    ]);
    expect((await b.read(jobDir, ["results", "a.txt"], null, { from: "tail", bytes: 6 })).data.toString()).toBe(
      "alice\n",
    );
    expect(await refusal(b.read(jobDir, ["bobs.txt"], null, { from: "head", bytes: 5 }))).toMatch(
      /BrowseRefused: "bobs.txt" is not readable by the job's account/,
    );
    expect(await refusal(b.read(jobDir, ["passwd-link"], null, { from: "head", bytes: 5 }))).toContain("is a symlink");
    expect(await refusal(b.read(jobDir, ["etc-link", "passwd"], null, { from: "head", bytes: 5 }))).toContain(
      "is a symlink",
    );
  });

  it("answers an ask through ctx.sudo as the owner's account, and says so for an owner it has no account for", async () => {
    const { shared } = aliceJob();
    const ctx = {
      executor: createLocalExecutor({ spawners: 0 }),
      roots: { declared: [shared], real: [shared] },
      sudo: { as: (owner: string) => (owner === "alice" ? { executor: asAlice } : null) },
    } as unknown as AgentContext;
    const ask = (extra: Record<string, unknown>) =>
      ({ id: `ask_${"0".repeat(26)}`, owner: "alice", jobId: JOB, attempt: 1, ...extra }) as AgentAsk;
    const read = await answerBrowse(ctx, ask({ kind: "read_file", path: "results/a.txt", from: "head" }) as never);
    expect(read).toMatchObject({
      ok: true,
      value: { size: 12, data: Buffer.from("hello alice\n").toString("base64") },
    });
    expect(await answerBrowse(ctx, ask({ kind: "read_file", path: "bobs.txt", from: "head" }) as never)).toMatchObject({
      ok: true,
      value: { refused: "path" },
    });
    expect(await answerBrowse(ctx, ask({ kind: "list_dir", path: "../.." }) as never)).toMatchObject({ ok: false });
    expect(await answerBrowse(ctx, ask({ kind: "list_dir", path: "", owner: "bob" }) as never)).toMatchObject({
      ok: true,
      value: { refused: "unsupported", reason: expect.stringContaining("sudo") },
    });
  });
});
