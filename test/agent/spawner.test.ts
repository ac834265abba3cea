/**
 * The local executor's long-lived bash spawners (agent/executor/spawner.ts), with real processes:
 * commands are not forked from the agent, keep argv and the environment exact, cannot end each
 * other's output early, and survive the worst: a spawner killed mid-command, output that imitates
 * the end marker, more commands than spawners.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { removeDeadSiblings } from "../../agent/executor/spawner.ts";
import { SBATCH_RETRYING } from "../../agent/slurm/sbatch.ts";

const exec = createLocalExecutor({ spawners: 2 });
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sg-spawner-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sh = (script: string, env: Record<string, string> = { PATH: "/usr/bin:/bin" }) =>
  exec.run("sh", ["-c", script], { env });

describe("commands through the spawners", () => {
  it("are not children of the agent process (no fork of the agent per command)", async () => {
    const r = await sh("echo $PPID");
    expect(r.code).toBe(0);
    expect(Number(r.stdout.trim())).not.toBe(process.pid);
  });

  it("get exactly the environment given, nothing of the spawner's", async () => {
    const r = await exec.run("/usr/bin/env", [], { env: { ONLY: "x y", EMPTY: "", "WITH=EQ": "no" } });
    // A name bash cannot export goes through a direct spawn: still exact.
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual(["EMPTY=", "ONLY=x y", "WITH=EQ=no"]);
    const plain = await exec.run("/usr/bin/env", [], { env: { A: "1", B: "a\nb" } });
    expect(plain).toMatchObject({ code: 0, stderr: "", timedOut: false });
    expect(["A=1\nB=a\nb\n", "B=a\nb\nA=1\n"]).toContain(plain.stdout); // in either order, nothing else
  });

  it("keep argv byte for byte (no shell), with empty and hostile items", async () => {
    const args = ["%s|", "", "$(id)", "`x`", "a b", "*", "'\"", "-n", "ünï", "\n"];
    const r = await exec.run("printf", args, { env: { PATH: "/usr/bin:/bin" } });
    expect(r.stdout).toBe("|$(id)|`x`|a b|*|'\"|-n|ünï|\n|");
  });

  it("run in the cwd given, and reject like spawn for a missing program or cwd", async () => {
    expect((await exec.run("pwd", [], { cwd: dir, env: { PATH: "/usr/bin:/bin" } })).stdout.trim()).toBe(dir);
    await expect(exec.run("/no/such/program", [])).rejects.toMatchObject({ code: "ENOENT" });
    await expect(exec.run("no-such-program-anywhere", [], { env: { PATH: "/usr/bin:/bin" } })).rejects.toThrow();
    await expect(exec.run("pwd", [], { cwd: join(dir, "missing") })).rejects.toThrow();
    // and the spawner still serves the next command
    expect((await sh("echo ok")).stdout).toBe("ok\n");
  });

  it("never mix outputs, with more commands at once than spawners", async () => {
    const results = await Promise.all(
      Array.from({ length: 9 }, (_, i) => sh(`sleep 0.0${9 - i}; echo out${i}; echo err${i} >&2; exit ${i}`)),
    );
    results.forEach((r, i) => {
      expect(r).toEqual({ code: i, stdout: `out${i}\n`, stderr: `err${i}\n`, timedOut: false });
    });
  });

  it("pass NUL bytes and output that imitates an end marker through untouched", async () => {
    // A marker's shape (NUL, 32 hex digits, a sequence number, NUL) with digits dash's printf cannot read as octal.
    const fake = `\\0${"a".repeat(32)}1\\0\\0deadbeef2\\0`;
    const r = await exec.run("sh", ["-c", `printf 'a${fake}b'; printf 'c${fake}d' >&2`], {
      env: { PATH: "/usr/bin:/bin" },
      binary: true,
    });
    expect(r.stdoutBytes).toEqual(Buffer.from(`a\0${"a".repeat(32)}1\0\0deadbeef2\0b`, "latin1"));
    expect(r.stderr).toBe(`c\0${"a".repeat(32)}1\0\0deadbeef2\0d`);
  });

  it("kill a command at its timeout, and only it", async () => {
    const started = Date.now();
    const [slow, fast] = await Promise.all([
      exec.run("sleep", ["10"], { timeoutMs: 150, env: { PATH: "/usr/bin:/bin" } }),
      sh("sleep 0.3; echo done"),
    ]);
    expect(slow).toMatchObject({ code: null, timedOut: true });
    expect(fast).toEqual({ code: 0, stdout: "done\n", stderr: "", timedOut: false });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("stop sbatch at its first 'sleeping and retrying' instead of two minutes of retries", async () => {
    // What sbatch 22.05 does when slurmctld's MaxJobCount is reached (sbatch.c: error, then sleep(++retries)).
    const fakeSbatch = join(dir, "sbatch");
    await writeFile(
      fakeSbatch,
      "#!/bin/sh\necho 'sbatch: error: Slurm job queue full, sleeping and retrying' >&2\nsleep 1; sleep 2; sleep 3\necho 99\n",
      { mode: 0o755 },
    );
    for (const executor of [exec, createLocalExecutor({ spawners: 0 })]) {
      const started = Date.now();
      const r = await executor.run(fakeSbatch, [], { stopOn: SBATCH_RETRYING, timeoutMs: 30_000 });
      expect(r).toMatchObject({ code: null, stdout: "", timedOut: false, stopped: true });
      expect(r.stderr).toContain("Slurm job queue full");
      expect(Date.now() - started).toBeLessThan(2_500);
    }
  });

  it("reject the command of a spawner killed under it, and serve the next from a new one", async () => {
    const pidFile = join(dir, "spawner.pid");
    const running = sh(`echo $PPID > ${pidFile}; sleep 5`);
    let pid = "";
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 20));
      pid = (await readFile(pidFile, "utf8").catch(() => "")).trim();
    }
    process.kill(Number(pid), "SIGKILL");
    await expect(running).rejects.toThrow(/spawner/);
    expect(await sh("echo again")).toMatchObject({ code: 0, stdout: "again\n" });
  });

  it("clear the request directories of agents that were killed, never a live one's", async () => {
    const base = await mkdtemp(join(tmpdir(), "sg-shm-"));
    const dead = join(base, "slurmgate-spawn-2147483646-abc");
    const alive = join(base, `slurmgate-spawn-${process.pid}-def`);
    const other = join(base, "unrelated");
    for (const d of [dead, alive, other]) {
      await mkdir(d);
    }
    await writeFile(join(dead, "req-1.7"), "left by a SIGKILL");
    removeDeadSiblings(base);
    expect([existsSync(dead), existsSync(alive), existsSync(other)]).toEqual([false, true, true]);
    await rm(base, { recursive: true, force: true });
  });
});
