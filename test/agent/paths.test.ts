/**
 * Confinement before creation (DESIGN invariant 5): job directories and working directories are
 * created one level at a time inside the shared root, and a hostile owner name, a planted symlink
 * (to outside, at the owner level, on the workdir's way, dangling) or a symlink swapped in between
 * the check and the creation never makes anything appear outside the root. Every case runs on the
 * local executor and over SFTP against the loopback sshd (test/ssh/sshd.sh).
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { type SshExecutor, createSshExecutor } from "../../agent/executor/ssh.ts";
import type { Executor } from "../../agent/executor/types.ts";
import { PathError, type Roots, prepareJobDir, resolveRoots, resolveWorkdir } from "../../agent/paths.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const REPO = join(import.meta.dirname, "..", "..");
const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";
const JOB = "job_01jd7x2k9m4q8r6t5v3w1y0zab";

function sshExecutor(): SshExecutor {
  const file = join(TEST_DIR, "ssh", "ssh.json");
  if (!existsSync(file)) {
    execFileSync("bash", [join(REPO, "test/ssh/sshd.sh"), "up"], { stdio: "inherit" });
  }
  const info = JSON.parse(readFileSync(file, "utf8"));
  return createSshExecutor({
    host: info.host,
    port: info.port,
    username: info.user,
    hostKey: info.hostKey,
    privateKey: readFileSync(info.key),
  });
}

const ssh = sshExecutor();
afterAll(() => ssh.close());

/** Everything under `dir` except the `skip` subtree, with its kind: the world outside the root. */
function listing(dir: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (p === skip) {
        continue;
      }
      const st = lstatSync(p);
      out.push(`${p}:${st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : "file"}`);
      if (st.isDirectory() && !st.isSymbolicLink()) {
        walk(p);
      }
    }
  };
  walk(dir);
  return out;
}

/** Wraps an executor to run `hook` once, just before the first mkdirNoFollow of `path`. */
function swapBefore(inner: Executor, path: string, hook: () => void): Executor {
  let done = false;
  return {
    ...inner,
    async mkdirNoFollow(p, mode) {
      if (!done && p === path) {
        done = true;
        hook();
      }
      return inner.mkdirNoFollow(p, mode);
    },
  };
}

describe.each([
  ["local", () => createLocalExecutor() as Executor],
  ["ssh", () => ssh as Executor],
])("confinement before creation (%s executor)", (_name, executor) => {
  let base: string;
  let root: string;
  let outside: string;
  let roots: Roots;
  let before: string[];

  beforeEach(async () => {
    base = varTmpDir("slurmgate-paths-");
    root = join(base, "root");
    outside = join(base, "outside");
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(join(outside, "keep"), "x");
    roots = await resolveRoots(executor(), [root]);
    return () => rmSync(base, { recursive: true, force: true });
  });

  /** Plants links in the root, snapshots the outside, runs `act`, and checks the outside is unchanged. */
  const nothingOutside = async (plant: () => void, act: () => Promise<unknown>) => {
    plant();
    before = listing(base, root);
    const error = await act().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(listing(base, root)).toEqual(before);
    return error;
  };

  it("creates <root>/<owner>/<job> one level at a time with mode 0700 and returns its real path", async () => {
    const dir = await prepareJobDir(executor(), roots, "alice", JOB);
    expect(dir).toBe(join(root, "alice", JOB));
    expect(statSync(join(root, "alice")).mode & 0o777).toBe(0o700);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // Idempotent: a second lease of the same job reuses the directory.
    expect(await prepareJobDir(executor(), roots, "alice", JOB)).toBe(dir);
  });

  it.each(["..", "../..", "../../../tmp", "../outside", ".", "", "a/b", "alice\n"])(
    "refuses the owner %j before creating anything",
    async (owner) => {
      const err = await nothingOutside(
        () => {},
        () => prepareJobDir(executor(), roots, owner, JOB),
      );
      expect(err).toBeInstanceOf(PathError);
      expect(readdirSync(root)).toEqual([]);
    },
  );

  it("refuses a job id that is not one", async () => {
    const err = await nothingOutside(
      () => {},
      () => prepareJobDir(executor(), roots, "alice", "../../outside/x"),
    );
    expect(err).toBeInstanceOf(PathError);
  });

  it("refuses an owner directory that is a symlink to outside the root", async () => {
    const err = await nothingOutside(
      () => symlinkSync(outside, join(root, "alice")),
      () => prepareJobDir(executor(), roots, "alice", JOB),
    );
    expect(err).toBeInstanceOf(PathError);
    expect((err as Error).message).toMatch(/symlink/);
    expect(existsSync(join(outside, JOB))).toBe(false);
  });

  it("refuses an owner directory that is a symlink even inside the root", async () => {
    mkdirSync(join(root, "bob"));
    const err = await nothingOutside(
      () => symlinkSync(join(root, "bob"), join(root, "alice")),
      () => prepareJobDir(executor(), roots, "alice", JOB),
    );
    expect(err).toBeInstanceOf(PathError);
    expect(readdirSync(join(root, "bob"))).toEqual([]);
  });

  it("refuses a dangling symlink at the owner level without creating its target", async () => {
    const err = await nothingOutside(
      () => symlinkSync(join(outside, "made-by-agent"), join(root, "alice")),
      () => prepareJobDir(executor(), roots, "alice", JOB),
    );
    expect(err).toBeInstanceOf(PathError);
    expect((err as Error).message).toMatch(/dangling/);
  });

  it("refuses a workdir whose intermediate component is a symlink to outside", async () => {
    const err = await nothingOutside(
      () => symlinkSync(outside, join(root, "project")),
      () => resolveWorkdir(executor(), roots, "project/run1/out"),
    );
    expect(err).toBeInstanceOf(PathError);
    expect(existsSync(join(outside, "run1"))).toBe(false);
  });

  it("refuses a workdir through a dangling symlink", async () => {
    const err = await nothingOutside(
      () => symlinkSync(join(outside, "new"), join(root, "project")),
      () => resolveWorkdir(executor(), roots, "project/run1"),
    );
    expect(err).toBeInstanceOf(PathError);
  });

  it.each(["../outside/x", "a/../../outside", "/etc", "a//b", "./a", "a/."])(
    "refuses the workdir %j before creating anything",
    async (workdir) => {
      const err = await nothingOutside(
        () => {},
        () => resolveWorkdir(executor(), roots, workdir),
      );
      expect(err).toBeInstanceOf(PathError);
      expect(readdirSync(root)).toEqual([]);
    },
  );

  it("refuses a workdir that is a file", async () => {
    writeFileSync(join(root, "file"), "");
    const err = await nothingOutside(
      () => {},
      () => resolveWorkdir(executor(), roots, "file/sub"),
    );
    expect(err).toBeInstanceOf(PathError);
  });

  it("follows a symlink that stays inside the root and creates the rest under its target", async () => {
    mkdirSync(join(root, "data"));
    symlinkSync(join(root, "data"), join(root, "project"));
    const dir = await resolveWorkdir(executor(), roots, "project/run1/out");
    expect(dir).toBe(join(root, "data", "run1", "out"));
    expect(statSync(dir).isDirectory()).toBe(true);
  });

  it("never reads a job file through a symlink a job planted in its own directory", async () => {
    const dir = await prepareJobDir(executor(), roots, "alice", JOB);
    writeFileSync(join(outside, "secret"), "do not ship");
    symlinkSync(join(outside, "secret"), join(dir, "stdout"));
    symlinkSync(join(outside, "secret"), join(dir, "result.json"));
    writeFileSync(join(dir, "stderr"), "mine");
    expect(await executor().readFile(join(dir, "stdout"))).toBeNull();
    expect(await executor().readFile(join(dir, "result.json"), { length: 100 })).toBeNull();
    expect((await executor().readFile(join(dir, "stderr")))?.toString()).toBe("mine");
  });

  it("refuses, without creating outside, when the owner directory is swapped for a symlink before the job directory is made", async () => {
    const ex = swapBefore(executor(), join(root, "alice", JOB), () => {
      renameSync(join(root, "alice"), join(root, "alice-moved"));
      symlinkSync(outside, join(root, "alice"));
    });
    const err = await nothingOutside(
      () => {},
      () => prepareJobDir(ex, roots, "alice", JOB),
    );
    expect(err).toBeInstanceOf(PathError);
    expect(existsSync(join(outside, JOB))).toBe(false);
  });

  it("refuses, without creating outside, when a workdir component is swapped for a symlink mid-walk", async () => {
    const ex = swapBefore(executor(), join(root, "a", "b", "c"), () => {
      renameSync(join(root, "a", "b"), join(root, "a", "b-moved"));
      symlinkSync(outside, join(root, "a", "b"));
    });
    const err = await nothingOutside(
      () => {},
      () => resolveWorkdir(ex, roots, "a/b/c"),
    );
    expect(err).toBeInstanceOf(PathError);
    expect(existsSync(join(outside, "c"))).toBe(false);
  });
});

describe("mkdirNoFollow", () => {
  it.each([
    ["local", () => createLocalExecutor() as Executor],
    ["ssh", () => ssh as Executor],
  ])("never creates through a symlink anywhere on the path (%s)", async (_name, executor) => {
    const base = varTmpDir("slurmgate-nofollow-");
    try {
      mkdirSync(join(base, "out"));
      mkdirSync(join(base, "in"));
      symlinkSync(join(base, "out"), join(base, "in", "link"));
      await expect(executor().mkdirNoFollow(join(base, "in", "link", "x"))).rejects.toMatchObject({
        code: expect.stringMatching(/^(ELOOP|ENOTDIR)$/),
      });
      expect(readdirSync(join(base, "out"))).toEqual([]);
      expect(await executor().mkdirNoFollow(join(base, "in", "link"))).toBe(false);
      expect(await executor().mkdirNoFollow(join(base, "in", "new"), 0o700)).toBe(true);
      expect(statSync(join(base, "in", "new")).mode & 0o777).toBe(0o700);
      expect(await executor().mkdirNoFollow(join(base, "in", "new"))).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
