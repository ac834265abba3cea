import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";

const exec = createLocalExecutor();
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sg-exec-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("createLocalExecutor().run", () => {
  it("passes argv without a shell", async () => {
    const r = await exec.run("printf", ["%s|", "$(id)", "a b", "`x`"]);
    expect(r).toEqual({ code: 0, stdout: "$(id)|a b|`x`|", stderr: "", timedOut: false });
  });
  it("feeds stdin, uses exactly the env given, and reports exit codes", async () => {
    const r = await exec.run("sh", ["-c", 'cat; echo "[$ONLY][$HOME]" >&2; exit 3'], {
      input: "in",
      env: { ONLY: "x", PATH: "/usr/bin:/bin" },
    });
    expect(r).toEqual({ code: 3, stdout: "in", stderr: "[x][]\n", timedOut: false });
  });
  it("gives stdin /dev/null when there is no input", async () => {
    const r = await exec.run("sh", ["-c", "test -S /dev/stdin && echo socket || echo no-socket; cat"]);
    expect(r.stdout).toBe("no-socket\n");
  });
  it("kills on timeout", async () => {
    const started = Date.now();
    const r = await exec.run("sleep", ["10"], { timeoutMs: 100 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
    expect(Date.now() - started).toBeLessThan(3_000);
  });
  it("keeps exactly maxOutputBytes of each stream, however the pipe chunks it", async () => {
    const capped = createLocalExecutor({ maxOutputBytes: 100_001 });
    const r = await capped.run("sh", ["-c", "yes abc | head -c 1000000; yes e | head -c 1000000 >&2"]);
    expect(r.stdout).toBe(`${"abc\n".repeat(25_000)}a`);
    expect(r.stderr).toBe(`${"e\n".repeat(50_000)}e`);
    expect(r.code).toBe(0);
  });
  it("rejects when the program does not exist", async () => {
    await expect(exec.run("/no/such/program", [])).rejects.toThrow();
  });
});

describe("createLocalExecutor() file operations", () => {
  it("writes with a mode, reads ranges, stats, realpaths and removes", async () => {
    const p = join(dir, "a", "f.txt");
    await exec.mkdir(join(dir, "a"), 0o700);
    await exec.writeFile(p, "hello world", 0o600);
    expect((await exec.stat(p))?.mode).toBe(0o600);
    expect((await exec.readFile(p, { offset: 6 }))?.toString()).toBe("world");
    expect((await exec.readFile(p, { offset: 0, length: 5 }))?.toString()).toBe("hello");
    expect((await exec.readFile(p, { offset: 100 }))?.toString()).toBe("");
    expect(await exec.readFile(join(dir, "missing"))).toBeNull();
    expect(await exec.stat(join(dir, "missing"))).toBeNull();
    await symlink(p, join(dir, "link"));
    expect((await exec.stat(join(dir, "link")))?.isSymbolicLink).toBe(true);
    expect(await exec.realpath(join(dir, "link"))).toBe(p);
    expect(await exec.realpath(join(dir, "missing"))).toBeNull();
    await exec.rm(p);
    await exec.rm(p);
    expect(await exec.stat(p)).toBeNull();
    await exec.rm(join(dir, "a"), { recursive: true });
    expect(await exec.stat(join(dir, "a"))).toBeNull();
  });
  it("replaces a file atomically", async () => {
    const p = join(dir, "atomic");
    await writeFile(p, "old");
    await exec.writeFile(p, "new");
    expect((await exec.readFile(p))?.toString()).toBe("new");
  });
});
