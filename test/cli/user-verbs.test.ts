/**
 * The real `slurmgate` binary against a real gateway: login, submit, ls, show, logs, cancel, wait,
 * clusters — exit codes, `--json` shapes, one-line errors, and no terminal output without a TTY.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { autoAgent, seedWorld, type World } from "../client/support/world.ts";
import { runCli, runCliInTty } from "./support.ts";

let gw: GatewayProcess;
let world: World;
let env: Record<string, string>;
let agent: ReturnType<typeof autoAgent> | undefined;

beforeAll(async () => {
  // The seeded agent answers no estimate ask: wait for it only briefly (the CLI prints that it did not).
  gw = await startGatewayProcess({ SLURMGATE_ESTIMATE_SECONDS: "1" });
  world = await seedWorld(gw.url, gw.adminToken);
  const home = mkdtempSync(join(tmpdir(), "slurmgate-cli-"));
  env = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: home, HOME: home };
});
afterAll(async () => {
  await agent?.stop();
  await gw?.stop();
});

/** Exactly one line on stderr, in the CLI's error format. */
function oneLine(stderr: string): string {
  expect(stderr.endsWith("\n")).toBe(true);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(stderr.startsWith("slurmgate: ")).toBe(true);
  return stderr.trimEnd();
}

/** Carriage returns, escape sequences or spinner frames: what a terminal-only progress line leaves. */
const terminalNoise = (text: string) => text.includes("\r") || text.includes("\u001b") || /[⠋⠙⠹]/.test(text);

describe("login", () => {
  it("refuses a bad token with one line and exit 1, and stores a good one with mode 0600", async () => {
    const home = mkdtempSync(join(tmpdir(), "slurmgate-login-"));
    const bad = await runCli(["login", "--url", gw.url, "--token", "sgu_wrong"], { env: { XDG_CONFIG_HOME: home } });
    expect(bad.code).toBe(1);
    expect(oneLine(bad.stderr)).toMatch(/\(401 unauthorized\)$/);

    const good = await runCli(["login", "--url", gw.url, "--token", "-"], {
      env: { XDG_CONFIG_HOME: home },
      input: `${world.userToken}\n`,
    });
    expect(good.code).toBe(0);
    expect(good.stdout).toContain("as alice (user)");
    const path = join(home, "slurmgate", "config.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ url: gw.url, token: world.userToken });

    const who = await runCli(["whoami", "--json"], { env: { XDG_CONFIG_HOME: home } });
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ kind: "user", user: "alice", url: gw.url });

    const overridden = await runCli(["whoami"], { env: { XDG_CONFIG_HOME: home, SLURMGATE_TOKEN: gw.adminToken } });
    expect(overridden.stdout).toMatch(/^admin \(admin\)/);
  });

  it("says how to log in when nothing is configured", async () => {
    const home = mkdtempSync(join(tmpdir(), "slurmgate-none-"));
    const run = await runCli(["ls"], { env: { XDG_CONFIG_HOME: home, HOME: home } });
    expect(run.code).toBe(1);
    expect(oneLine(run.stderr)).toContain("slurmgate login");
  });
});

describe("submit", () => {
  it("--dry-run says where the job would run and why, submits nothing, and exits 1 when nowhere", async () => {
    const before = (await world.user.listPage({})).items.length;
    const plan = await runCli(["submit", "--dry-run", "--gpus", "a100:1", "--partition", "gpu", "--", "true"], { env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(
      /^would run on hpc1\/gpu\n {2}hpc1: chosen: hpc1\/gpu can run it\n {4}no estimate from hpc1: no agent of hpc1 answered within 1 s\n$/,
    );
    const json = await runCli(["submit", "--dry-run", "--json", "--gpus", "a100:1", "-p", "gpu", "--", "true"], {
      env,
    });
    expect(JSON.parse(json.stdout)).toMatchObject({ cluster: "hpc1", partition: "gpu", refusal: null });
    const nowhere = await runCli(["submit", "--dry-run", "--gpus", "h100:1", "--", "true"], { env });
    expect(nowhere.code).toBe(1);
    expect(nowhere.stdout).toMatch(
      /^would be refused: resources\.gpus\.type: .*h100.*\n {2}hpc1: resources\.gpus\.type: /,
    );
    expect((await world.user.listPage({})).items.length).toBe(before);
  });

  it("maps flags onto the spec and prints the job as JSON", async () => {
    const run = await runCli(
      [
        "submit",
        "--json",
        "--name",
        "train",
        "--gpus",
        "a100:1",
        "--time",
        "1h",
        "--partition",
        "gpu",
        "--cpus",
        "4",
        "--mem",
        "8G",
        "--env",
        "LR=0.1",
        "--label",
        "team=ml",
        "--setup",
        "module load cuda",
        "--",
        "python",
        "train.py",
        "--epochs",
        "3",
      ],
      { env },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const job = JSON.parse(run.stdout);
    expect(job).toMatchObject({ name: "train", state: "queued", partition: "gpu", labels: { team: "ml" } });
    expect(job.spec).toMatchObject({
      command: ["python", "train.py", "--epochs", "3"],
      env: { LR: "0.1" },
      setup: ["module load cuda"],
      resources: { time: "1h", cpusPerTask: 4, memPerNode: "8G", gpus: { type: "a100", count: 1 } },
    });
    expect(job.id).toMatch(/^job_/);
  });

  it("turns a 422 into one readable line and exit 1", async () => {
    const run = await runCli(["submit", "--time", "forever", "--", "true"], { env });
    expect(run.code).toBe(1);
    expect(oneLine(run.stderr)).toMatch(/^slurmgate: resources\.time: a Slurm time .*\(422 validation_failed\)$/);
    expect(run.stdout).toBe("");
  });

  it("reads a YAML job file, waits, and exits by the job's final state", async () => {
    agent ??= autoAgent(world.agent);
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-job-"));
    const ok = join(dir, "ok.yaml");
    writeFileSync(ok, "name: from-yaml\npartition: cpu\ncommand: [echo, hi]\nresources: { time: 5m }\n");
    const done = await runCli(["submit", "-f", ok, "--wait"], { env });
    expect(terminalNoise(done.stderr)).toBe(false);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/^job_\S+ completed \(exit 0\)\n$/);

    const failing = join(dir, "fail.json");
    writeFileSync(
      failing,
      JSON.stringify({ name: "boom", command: ["false"], labels: { outcome: "failed", exit: "7" } }),
    );
    const failed = await runCli(["submit", "-f", failing, "--wait", "--json"], { env });
    expect(failed.code).toBe(3);
    expect(JSON.parse(failed.stdout)).toMatchObject({ name: "boom", state: "failed", exitCode: 7 });
  });

  it("--follow streams the job's stdout and -q prints only the id", async () => {
    agent ??= autoAgent(world.agent);
    const run = await runCli(["submit", "--follow", "--env", "SAY=hello from slurm", "--", "echo"], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("hello from slurm\n");
    expect(run.stderr).toMatch(/submitted to hpc1/);
    expect(run.stderr).toMatch(/completed \(exit 0\)/);
    expect(terminalNoise(run.stderr)).toBe(false);

    const quiet = await runCli(["submit", "-q", "--", "true"], { env });
    expect(quiet.stdout).toMatch(/^job_[0-9a-z]+\n$/);
  });

  it("rejects bad usage with exit 2", async () => {
    for (const args of [
      ["submit"],
      ["submit", "--gpus", "a100:x", "--", "true"],
      ["submit", "--bogus"],
      ["frobnicate"],
    ]) {
      const run = await runCli(args, { env });
      expect(run.code, args.join(" ")).toBe(2);
      expect(oneLine(run.stderr)).toMatch(/--help\)$/);
    }
  });
});

describe("ls, show, logs, cancel, wait, clusters", () => {
  it("covers a job's life through the verbs", async () => {
    await agent?.stop();
    agent = undefined;
    const tag = `life${Date.now()}`;
    const submitted = await runCli(["submit", "-q", "--label", `tag=${tag}`, "--", "python", "x.py"], { env });
    const id = submitted.stdout.trim();

    const list = await runCli(["ls", "--json", "--label", `tag=${tag}`], { env });
    expect(list.code).toBe(0);
    const jobs = JSON.parse(list.stdout);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ id, state: "queued", labels: { tag } });

    const table = await runCli(["ls", "--label", `tag=${tag}`], { env });
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+STATE\s+WHERE\s+SLURM\s+AGE$/);
    expect(table.stdout).toContain(id);

    const timedOut = await runCli(["wait", id, "--timeout", "1s"], { env });
    expect(timedOut.code).toBe(4);
    expect(oneLine(timedOut.stderr)).toContain("still queued");

    await world.agent.start(id, "777");
    await world.agent.log(id, "line 1\n");
    await world.agent.log(id, "warn\n", "stderr");
    const untilRunning = await runCli(["wait", id, "--until", "running"], { env });
    expect(untilRunning.code).toBe(0);

    const follow = runCli(["logs", "-f", id], { env });
    await new Promise((r) => setTimeout(r, 1_500));
    await world.agent.log(id, "line 2\n");
    await world.agent.finish(id, "completed", 0);
    expect((await follow).stdout).toBe("line 1\nline 2\n");
    expect((await runCli(["logs", "--stderr", id], { env })).stdout).toBe("warn\n");

    const shown = await runCli(["show", id], { env });
    expect(shown.stdout).toMatch(/slurm id\s+777/);
    expect(shown.stdout).toMatch(/events\n/);
    const json = JSON.parse((await runCli(["show", id, "--json"], { env })).stdout);
    expect(json).toMatchObject({ id, state: "completed", slurmJobId: "777" });
    expect(json.events.map((e: { state?: string }) => e.state)).toEqual([
      "queued",
      "leased",
      "submitted",
      "running",
      "completed",
    ]);

    expect((await runCli(["wait", id], { env })).code).toBe(0);
  });

  it("show lists an array job's tasks, and client.tasks returns them", async () => {
    await agent?.stop();
    agent = undefined;
    const id = (await runCli(["submit", "-q", "--array", "0-2", "--", "true"], { env })).stdout.trim();
    const before = await runCli(["show", id], { env });
    expect(before.stdout).toMatch(/tasks\n {2}\(none reported yet/);
    await world.agent.start(id, "778");
    const tasks = [
      { task: 0, state: "completed", exitCode: 0, signal: null, reason: "exited 0" },
      { task: 1, state: "failed", exitCode: 1, signal: null, reason: "exited 1" },
      { task: 2, state: "out_of_memory", exitCode: 0, signal: 9, reason: "killed: out of memory" },
    ] as const;
    await world.agent.report(id, {
      state: "out_of_memory",
      exitCode: 0,
      reason: "1 of 3 tasks ran out of memory (task 2: killed: out of memory); 1 failed (task 1 exited 1); 1 completed",
      tasks: [...tasks],
    });
    expect(await world.user.tasks(id)).toMatchObject({ counts: { completed: 1, failed: 1, out_of_memory: 1 } });
    const shown = await runCli(["show", id], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /tasks\n {2}0\s+completed\s+exit 0\s+exited 0\n {2}1\s+failed\s+exit 1\s+exited 1\n {2}2\s+out_of_memory\s+exit 0 \(signal 9\)\s+killed: out of memory\n/,
    );
    const json = JSON.parse((await runCli(["show", id, "--json"], { env })).stdout);
    expect(json.tasks).toEqual(tasks);
  });

  it("show --script prints the exact script the agent reported, and client.script returns it", async () => {
    const id = (await runCli(["submit", "-q", "--", "true"], { env })).stdout.trim();
    const none = await runCli(["show", id, "--script"], { env });
    expect(none.code).toBe(1);
    expect(oneLine(none.stderr)).toMatch(/has no script yet.*\(404 not_found\)$/);
    const script = "#!/bin/bash\n#SBATCH --job-name=t\necho 'é ✓' $HOME\n\n";
    await world.agent.leaseJob(id);
    await world.agent.report(id, { state: "submitted", slurmJobId: "779", script });
    const shown = await runCli(["show", id, "--script"], { env });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toBe(script);
    expect(await world.user.script(id)).toBe(script);
    expect((await runCli(["show", id, "--script", "--json"], { env })).code).toBe(2);
  });

  it("cancel cancels, and wait on a cancelled job exits 3", async () => {
    const id = (await runCli(["submit", "-q", "--", "sleep", "100"], { env })).stdout.trim();
    const cancelled = await runCli(["cancel", id], { env });
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe(`${id} cancelled\n`);
    const waited = await runCli(["wait", id], { env });
    expect(waited.code).toBe(3);
    expect(waited.stdout).toMatch(/cancelled/);
  });

  it("Ctrl-C ends a wait with exit 130 and leaves the job alone", async () => {
    const id = (await runCli(["submit", "-q", "--", "sleep", "100"], { env })).stdout.trim();
    const run = await runCli(["wait", id], { env, sigintAfterMs: 1_200 });
    expect(run.code).toBe(130);
    expect(run.stderr).toBe("slurmgate: interrupted (the job keeps running)\n");
    expect((await world.user.get(id)).state).toBe("queued");
  });

  it("clusters --json lists the granted cluster", async () => {
    const run = await runCli(["clusters", "--json"], { env });
    expect(JSON.parse(run.stdout)).toEqual([expect.objectContaining({ name: "hpc1", alive: true })]);
    const human = await runCli(["clusters"], { env });
    expect(human.stdout).toMatch(/hpc1\s+up\s+cpu,gpu\s+a100/);
  });

  it("clusters NAME shows its partitions, limits and GPUs; an unknown name is one line and exit 1", async () => {
    const one = await runCli(["clusters", "hpc1"], { env });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^hpc1: agent up, seen /);
    expect(one.stdout).toMatch(/PARTITION\s+STATE\s+NODES IDLE\/TOTAL\s+GPUS\s+LIMITS/);
    expect(one.stdout).toMatch(/cpu\*\s+up\s+\?\/4\s+-\s+≤ 1440m, 64 CPUs and 256000 MB per node/);
    expect(one.stdout).toMatch(/gpu\s+up\s+\?\/2\s+a100 ×\d+ per node/);
    const json = await runCli(["clusters", "hpc1", "--json"], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ name: "hpc1", unavailablePartitions: [], profileDetails: {} });
    const missing = await runCli(["clusters", "nope"], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("slurmgate: no cluster nope that you may use (yours: hpc1)\n");
  });

  it("a missing job and an unreachable gateway are one line and exit 1", async () => {
    const missing = await runCli(["show", "job_00000000000000000000000000"], { env });
    expect(missing.code).toBe(1);
    expect(oneLine(missing.stderr)).toMatch(/\(404 not_found\)$/);
    const down = await runCli(["ls"], { env: { ...env, SLURMGATE_URL: "http://127.0.0.1:1" } });
    expect(down.code).toBe(1);
    expect(oneLine(down.stderr)).toMatch(/^slurmgate: cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});

describe("with a terminal", () => {
  const hasScript = (() => {
    try {
      execFileSync("script", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.runIf(hasScript)("draws a progress line while waiting, only under a TTY", async () => {
    const id = (await runCli(["submit", "-q", "--", "true"], { env })).stdout.trim();
    const waiting = runCliInTty(["wait", id, "--timeout", "20s"], env);
    await new Promise((r) => setTimeout(r, 1_200));
    await world.agent.start(id);
    await world.agent.finish(id);
    const run = await waiting;
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] job_\S+ (waiting|queued|leased|running)/);
    expect(run.stdout).toContain(`${id} completed (exit 0)`);
  });
});
