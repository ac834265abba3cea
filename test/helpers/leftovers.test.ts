import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { removeWhatAppears } from "./leftovers.ts";
import { varTmpDir } from "./var-tmp.ts";

describe("removing what a run left in a shared root", () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("removes new owners and new job directories, and keeps everything that was there", () => {
    root = mkdtempSync(join(tmpdir(), "sg-leftovers-"));
    mkdirSync(join(root, "alice", "job_old"), { recursive: true });
    writeFileSync(join(root, "alice", "job_old", "stdout"), "kept");
    writeFileSync(join(root, "README"), "a file beside the owners");
    const cleanup = removeWhatAppears(root);

    mkdirSync(join(root, "alice", "job_new", "deep"), { recursive: true });
    writeFileSync(join(root, "alice", "job_old", "written-later"), "inside an old job: not ours to judge");
    mkdirSync(join(root, "bob", "job_b"), { recursive: true });
    writeFileSync(join(root, "stray"), "x");
    cleanup();

    expect(readdirSync(root).sort()).toEqual(["README", "alice"]);
    expect(readdirSync(join(root, "alice"))).toEqual(["job_old"]);
    expect(readdirSync(join(root, "alice", "job_old")).sort()).toEqual(["stdout", "written-later"]);
  });

  it("removes a planted symlink itself, never what it points at; a missing root is no error", () => {
    root = mkdtempSync(join(tmpdir(), "sg-leftovers-"));
    const outside = mkdtempSync(join(tmpdir(), "sg-leftovers-outside-"));
    writeFileSync(join(outside, "precious"), "x");
    mkdirSync(join(root, "alice"));
    const cleanup = removeWhatAppears(root);
    symlinkSync(outside, join(root, "alice", "job_link"));
    symlinkSync(outside, join(root, "mallory"));
    cleanup();
    expect(readdirSync(join(root, "alice"))).toEqual([]);
    expect(existsSync(join(root, "mallory"))).toBe(false);
    expect(readdirSync(outside)).toEqual(["precious"]);
    rmSync(outside, { recursive: true });

    const gone = join(root, "never-there");
    const nothing = removeWhatAppears(gone);
    expect(() => nothing()).not.toThrow();
  });
});

describe("the run's own temporary directories (test/global-setup.ts)", () => {
  it("are where tmpdir() and varTmpDir() make things, under /tmp and /var/tmp, open to every user like those", () => {
    expect(basename(tmpdir())).toMatch(/^slurmgate-tests-/);
    expect(statSync(tmpdir()).mode & 0o7777).toBe(0o1777);
    const varTmp = process.env.SLURMGATE_TEST_VAR_TMP!;
    expect(dirname(varTmp)).toBe("/var/tmp");
    expect(basename(varTmp)).toMatch(/^slurmgate-tests-/);
    expect(statSync(varTmp).mode & 0o7777).toBe(0o1777);
    const made = varTmpDir("sg-leftovers-");
    expect(dirname(made)).toBe(varTmp);
    rmSync(made, { recursive: true });
  });
});
