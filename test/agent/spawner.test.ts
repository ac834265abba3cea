/**
 * The local executor's long-lived spawners (agent/executor/spawner.ts), each kind of them (python's
 * posix_spawn and bash), with real processes: commands are not forked from the agent, keep argv,
 * the environment and signal dispositions exact, cannot end each other's output early, and survive
 * the worst: a spawner killed mid-command, output that imitates the end marker, more commands than
 * spawners, an agent SIGKILLed with commands queued.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import { spawnerCheck } from "../../agent/doctor.ts";
import { Lane, inLane } from "../../agent/executor/lane.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { removeDeadSiblings } from "../../agent/executor/spawner.ts";
import { type SpawnerKind, spawnerKind } from "../../agent/executor/spawner-programs.ts";
import type { RunOptions } from "../../agent/executor/types.ts";
import { SBATCH_RETRYING } from "../../agent/slurm/sbatch.ts";

// Both, always: CI's machine has /usr/bin/python3, and a missing one fails here instead of skipping.
const SPAWNER_KINDS: SpawnerKind[] = ["python", "bash"];

const AGENT_ENV = {
  SLURMGATE_URL: "http://127.0.0.1:9",
  SLURMGATE_AGENT_TOKEN: "sga_spawnertest0123456789abcdefghijklm",
  SLURMGATE_SHARED_ROOTS: "/var/tmp",
  SLURMGATE_CLUSTER: "alpha",
};

describe("the spawner a machine gets", () => {
  it("is python's posix_spawn where /usr/bin/python3 has it, unless bash is asked for", () => {
    expect([spawnerKind("auto"), spawnerKind("python"), spawnerKind("bash")]).toEqual(["python", "python", "bash"]);
    expect(parseAgentConfig(AGENT_ENV).SLURMGATE_SPAWNER).toBe("auto");
    expect(spawnerCheck({ SLURMGATE_SPAWNER: "auto" })).toMatchObject({ ok: true, detail: /posix_spawn/ });
  });

  it("falls back to bash for auto, and refuses an explicit python by name, where python3 cannot posix_spawn", async () => {
    const work = await mkdtemp(join(tmpdir(), "sg-python-"));
    const old = join(work, "python3"); // answers as a Python 3.7 would
    await writeFile(
      old,
      "#!/bin/sh\necho \"AttributeError: module 'os' has no attribute 'posix_spawn'\" >&2\nexit 1\n",
      {
        mode: 0o755,
      },
    );
    for (const python of [old, join(work, "missing")]) {
      expect(spawnerKind("auto", python)).toBe("bash");
      expect(() => spawnerKind("python", python)).toThrow(/^SLURMGATE_SPAWNER=python: .* has no os\.posix_spawn/);
      expect(spawnerCheck({ SLURMGATE_SPAWNER: "python" }, python)).toMatchObject({
        ok: false,
        fix: /SLURMGATE_SPAWNER=auto/,
      });
      expect(spawnerCheck({ SLURMGATE_SPAWNER: "auto" }, python)).toMatchObject({ ok: true, detail: /^bash/ });
    }
    await rm(work, { recursive: true, force: true });
  });

  it("refuses a spawner that is not one, naming the variable", () => {
    expect(() => parseAgentConfig({ ...AGENT_ENV, SLURMGATE_SPAWNER: "perl" })).toThrow(
      /SLURMGATE_SPAWNER.*(auto|python|bash)/s,
    );
  });
});

describe.each(SPAWNER_KINDS)("the %s spawner", (kind) => {
  const exec = createLocalExecutor({ spawners: 2, spawner: kind });
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

    it("end a writer whose reader left with SIGPIPE, as a command Node started would end", async () => {
      // Python ignores SIGPIPE and SIGXFSZ itself, and an ignored signal stays ignored across exec.
      expect((await sh("(yes; echo $? >&2) | head -c 1 >/dev/null")).stderr).toBe("141\n");
      const status = (await sh("cat /proc/$$/status")).stdout;
      const ignored = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1]}`);
      // Signals 32 and 33 are glibc's own (thread cancellation, setxid): its posix_spawn leaves them
      // ignored and no program can catch them. Every other one is at its default.
      const glibcOwn = (1n << 31n) | (1n << 32n);
      expect((ignored & ~glibcOwn).toString(16)).toBe("0");
    });

    it("give a command stdin, stdout and stderr, and no other descriptor of the spawner's", async () => {
      // The spawner holds 3, 4 and 5 (and python a few more just above); dash keeps its own at 10 and up.
      const open = await sh("for fd in 0 1 2 3 4 5 6 7 8 9; do [ -e /proc/$$/fd/$fd ] && echo $fd; done; true");
      expect(open.stdout).toBe("0\n1\n2\n");
      expect((await sh("cat; echo end")).stdout).toBe("end\n"); // stdin is /dev/null, never the request pipe
    });

    it("take a relative cwd from where the agent started, never from the command before", async () => {
      await mkdir(join(dir, "rel"));
      const rel = relative(process.cwd(), join(dir, "rel"));
      expect(rel).toMatch(/^\.\.\//);
      for (let i = 0; i < 3; i++) {
        expect((await exec.run("pwd", [], { cwd: rel, env: { PATH: "/usr/bin:/bin" } })).stdout).toBe(`${dir}/rel\n`);
      }
    });

    it("run a script without a #! line with /bin/sh, as execvp and a direct spawn do", async () => {
      const script = join(dir, "no-shebang");
      await writeFile(script, 'echo "ran $1"\n', { mode: 0o755 });
      for (const executor of [exec, createLocalExecutor({ spawners: 0 })]) {
        const r = await executor.run(script, ["x y"], { env: { PATH: "/usr/bin:/bin" } });
        expect(r).toEqual({ code: 0, stdout: "ran x y\n", stderr: "", timedOut: false });
      }
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
  });

  const until = async (check: () => boolean | Promise<boolean>, ms = 5_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) {
        throw new Error("timed out waiting");
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  describe("a submission lane (the next command queued behind the running one)", () => {
    const PATH_ONLY = { PATH: "/usr/bin:/bin" };
    const laned = (lane: Lane, script: string, opts: RunOptions = {}) =>
      inLane(lane, () => exec.run("sh", ["-c", script], { env: PATH_ONLY, ...opts }));

    it("hands the next command over while the one before runs, and runs them in order, one at a time", async () => {
      const log = join(dir, "order.log");
      const lane = new Lane();
      const a = laned(lane, `echo start-a >> ${log}; sleep 0.4; echo end-a >> ${log}; echo A`);
      let aEnded = false;
      a.result.then(() => (aEnded = true));
      await a.handedOver;
      const b = laned(lane, `echo start-b >> ${log}; echo B; echo b-err >&2; exit 3`);
      await b.handedOver;
      // b is queued in bash, not waiting in the agent: handed over while a still runs
      expect(aEnded).toBe(false);
      expect(await a.result).toEqual({ code: 0, stdout: "A\n", stderr: "", timedOut: false });
      expect(await b.result).toEqual({ code: 3, stdout: "B\n", stderr: "b-err\n", timedOut: false });
      expect(await readFile(log, "utf8")).toBe("start-a\nend-a\nstart-b\n");
    });

    it("keeps every command of a call in the lane: a lookup after an sbatch never overlaps the next sbatch", async () => {
      const log = join(dir, "overlap.log");
      const step = (name: string) => `echo start-${name} >> ${log}; sleep 0.15; echo end-${name} >> ${log}`;
      const lane = new Lane();
      const a = inLane(lane, async () => {
        await exec.run("sh", ["-c", step("a1")], { env: PATH_ONLY });
        return exec.run("sh", ["-c", step("a2")], { env: PATH_ONLY }); // e.g. the tag lookup after an unknown outcome
      });
      await a.handedOver;
      const b = laned(lane, step("b"));
      await b.handedOver;
      await Promise.all([a.result, b.result]);
      const lines = (await readFile(log, "utf8")).split("\n").filter(Boolean);
      for (let i = 0; i < lines.length; i += 2) {
        expect([lines[i]?.slice(6), lines[i + 1]?.slice(4)]).toEqual([lines[i + 1]?.slice(4), lines[i]?.slice(6)]);
        expect([lines[i]?.startsWith("start-"), lines[i + 1]?.startsWith("end-")]).toEqual([true, true]);
      }
      expect(lines).toHaveLength(6);
    });

    it("never starts a withdrawn queued command, and goes on with the next", async () => {
      const mark = join(dir, "withdrawn");
      const lane = new Lane();
      const a = laned(lane, "sleep 0.3; echo a");
      await a.handedOver;
      const b = laned(lane, `touch ${mark}`);
      await b.handedOver;
      b.cancel();
      await expect(b.result).rejects.toMatchObject({ code: "ECANCELED" });
      expect((await a.result).stdout).toBe("a\n");
      const c = laned(lane, "echo c");
      expect((await c.result).stdout).toBe("c\n");
      expect(existsSync(mark)).toBe(false);
    });

    it("a withdrawal that comes too late never hides that the command ran", async () => {
      const lane = new Lane();
      const a = laned(lane, "echo ran");
      await a.handedOver;
      await new Promise((r) => setTimeout(r, 200)); // a started (and ended) long ago
      a.cancel();
      expect(await a.result).toMatchObject({ code: 0, stdout: "ran\n" });
    });

    it("times a queued command from its start, and a timeout kills only the command it was for", async () => {
      const lane = new Lane();
      const slow = inLane(lane, () => exec.run("sleep", ["10"], { timeoutMs: 300, env: PATH_ONLY }));
      await slow.handedOver;
      // queued behind 300 ms of sleep: a 500 ms timeout counted from queueing would fire mid-run
      const next = laned(lane, "sleep 0.35; echo done", { timeoutMs: 500 });
      await next.handedOver;
      expect(await slow.result).toMatchObject({ code: null, timedOut: true });
      expect(await next.result).toEqual({ code: 0, stdout: "done\n", stderr: "", timedOut: false });
    });

    it("still stops sbatch at 'sleeping and retrying', and the queued one runs after it untouched", async () => {
      const fakeSbatch = join(dir, "sbatch-full");
      await writeFile(
        fakeSbatch,
        "#!/bin/sh\necho 'sbatch: error: Slurm job queue full, sleeping and retrying' >&2\nsleep 3\necho 99\n",
        { mode: 0o755 },
      );
      const lane = new Lane();
      const started = Date.now();
      const full = inLane(lane, () => exec.run(fakeSbatch, [], { stopOn: SBATCH_RETRYING, timeoutMs: 30_000 }));
      await full.handedOver;
      const next = laned(lane, "echo 100");
      await next.handedOver;
      expect(await full.result).toMatchObject({ code: null, stdout: "", stopped: true });
      expect(await next.result).toEqual({ code: 0, stdout: "100\n", stderr: "", timedOut: false });
      expect(Date.now() - started).toBeLessThan(2_500);
    });

    it("a spawner killed mid-command fails the running and the queued command as unknown, never as a result", async () => {
      const pidFile = join(dir, "lane-spawner.pid");
      const mark = join(dir, "lane-after-kill");
      const lane = new Lane();
      const a = laned(lane, `echo $PPID > ${pidFile}; sleep 5; echo late`);
      await a.handedOver;
      const b = laned(lane, `touch ${mark}; echo b`);
      await b.handedOver;
      await until(() => existsSync(pidFile));
      await new Promise((r) => setTimeout(r, 50)); // written in full
      process.kill(Number((await readFile(pidFile, "utf8")).trim()), "SIGKILL");
      await expect(a.result).rejects.toThrow(/spawner died/);
      await expect(b.result).rejects.toThrow(/spawner died/);
      expect(existsSync(mark)).toBe(false);
      // the lane goes on with a new spawner
      expect((await laned(lane, "echo again").result).stdout).toBe("again\n");
    });

    // With the pipes held open by a process the agent left behind, bash gets no SIGPIPE and no end of
    // input: only its check that the agent is still its parent keeps it from starting what was queued.
    it.each([false, true])(
      "never starts a queued command after the agent that queued it was SIGKILLed (pipes held open: %s)",
      async (hold) => {
        const root = join(import.meta.dirname, "../..");
        const work = await mkdtemp(join(tmpdir(), "sg-lane-kill-"));
        const child = join(work, "agent.mjs");
        await writeFile(
          child,
          `import { createLocalExecutor } from ${JSON.stringify(join(root, "agent/executor/local.ts"))};
  import { Lane, inLane } from ${JSON.stringify(join(root, "agent/executor/lane.ts"))};
  const exec = createLocalExecutor({ spawners: 1, spawner: ${JSON.stringify(kind)} });
  const lane = new Lane();
  const env = { PATH: "/usr/bin:/bin" };
  const run = (script) => inLane(lane, () => exec.run("sh", ["-c", script], { env }));
  const a = run("echo $PPID > ${work}/spawner.pid; sleep 0.6; echo a > ${work}/a");
  await a.handedOver;
  const b = run("echo b > ${work}/b");
  await b.handedOver;
  const c = run("echo c > ${work}/c");
  await c.handedOver;
  if (${hold}) {
    const { readdirSync, readlinkSync } = await import("node:fs");
    const { spawn } = await import("node:child_process");
    const pipes = readdirSync("/proc/self/fd").map(Number).filter((fd) => {
      try { return fd > 2 && /^(pipe|socket):/.test(readlinkSync("/proc/self/fd/" + fd)); } catch { return false; }
    });
    const holder = spawn("sleep", ["8"], { stdio: ["ignore", "ignore", "ignore", ...pipes], detached: true });
    holder.unref();
    process.stdout.write("holder " + holder.pid + "\\n");
  }
  process.stdout.write("queued\\n");
  setInterval(() => {}, 1000);
  `,
        );
        const agent = spawn(process.execPath, [child], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        agent.stdout.on("data", (d: Buffer) => (out += d));
        try {
          await until(() => out.includes("queued") || agent.exitCode !== null, 15_000);
          expect(out).toMatch(hold ? /^holder \d+\nqueued\n$/ : /^queued\n$/);
          await until(() => existsSync(join(work, "spawner.pid")));
          await new Promise((r) => setTimeout(r, 50)); // written in full
          agent.kill("SIGKILL");
          const spawnerPid = Number((await readFile(join(work, "spawner.pid"), "utf8")).trim());
          await until(() => !alive(spawnerPid), 5_000); // the spawner ends instead of starting b and c
          await until(() => existsSync(join(work, "a")), 2_000); // the command that was running finishes
          await new Promise((r) => setTimeout(r, 300));
          expect([existsSync(join(work, "b")), existsSync(join(work, "c"))]).toEqual([false, false]);
        } finally {
          agent.kill("SIGKILL");
          const holder = Number(/holder (\d+)/.exec(out)?.[1]);
          if (holder) {
            process.kill(holder, "SIGKILL");
          }
          await rm(work, { recursive: true, force: true });
        }
      },
    );
  });
});

describe("the spawners' request directories", () => {
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
