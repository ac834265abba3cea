import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { removeWhatAppears } from "./leftovers.ts";

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
