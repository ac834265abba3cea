/**
 * `slurmgate sweep` as a person or a script runs it, against a real gateway: a job file crossed
 * with `--grid`, `--max-parallel`, `--wait` with its exit code, the bar on a terminal and plain
 * lines elsewhere, show/results/cancel, and one readable line for every bad input.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_SWEEP_ELEMENTS } from "../../schemas/sweep.ts";
import { autoAgent, seedWorld, type World } from "../client/support/world.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { runCli, runCliInTty } from "./support.ts";

let gw: GatewayProcess;
let world: World;
let env: Record<string, string>;
let dir = "";

beforeAll(async () => {
  gw = await startGatewayProcess();
  world = await seedWorld(gw.url, gw.adminToken);
  dir = mkdtempSync(join(tmpdir(), "slurmgate-sweep-cli-"));
  env = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: dir, HOME: dir };
  writeFileSync(
    join(dir, "train.yaml"),
    [
      "name: train",
      "partition: cpu",
      "command: [python, train.py, --lr, '{LR}', --seed, '{SEED}']",
      "resources: { time: 10m }",
      "labels: { team: ml }",
      "",
    ].join("\n"),
  );
});
afterAll(async () => {
  await gw?.stop();
});

/** Exactly one line on stderr, in the CLI's error format. */
function oneLine(stderr: string): string {
  expect(stderr.endsWith("\n")).toBe(true);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(stderr.startsWith("slurmgate: ")).toBe(true);
  return stderr.trimEnd();
}

const terminalNoise = (text: string) => text.includes("\r") || text.includes("\u001b");

describe("sweep submit", () => {
  it("crosses the job file with --grid into one sweep, values as strings, with --max-parallel", async () => {
    const file = join(dir, "train.yaml");
    const run = await runCli(
      ["sweep", "submit", file, "--grid", "LR=0.1,0.01", "--grid", "SEED=1,2,3", "--max-parallel", "3", "--json"],
      { env },
    );
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const created = JSON.parse(run.stdout);
    expect(created).toMatchObject({ total: 6, maxParallel: 3, state: "active" });
    expect(created.jobIds).toHaveLength(6);
    const shown = await runCli(["sweep", "show", created.id, "--json"], { env });
    const detail = JSON.parse(shown.stdout);
    expect(detail.elements.map((e: { index: number }) => e.index)).toEqual([0, 1, 2, 3, 4, 5]);
    const pairs = detail.elements.map((e: { labels: Record<string, string> }) => `${e.labels.LR}/${e.labels.SEED}`);
    expect([...pairs].sort()).toEqual(["0.01/1", "0.01/2", "0.01/3", "0.1/1", "0.1/2", "0.1/3"]);
    const job = await world.user.get(created.jobIds[0]);
    expect(job.spec?.command).toEqual(["python", "train.py", "--lr", job.spec?.env.LR, "--seed", job.spec?.env.SEED]);
    expect(job.labels.team).toBe("ml");

    const text = await runCli(["sweep", "show", created.id], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("0/6 done · 0 running · 6 pending · 0 failed");
    expect(text.stdout).toContain(created.jobIds[5]);

    const cancelled = await runCli(["sweep", "cancel", created.id], { env });
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe(
      `${created.id} cancelled: 6/6 done · 0 running · 0 pending · 0 failed · 6 cancelled\n`,
    );
    const results = await runCli(["sweep", "results", created.id], { env });
    const lines = results.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.index, l.jobId, l.state])).toEqual(
      created.jobIds.map((id: string, i: number) => [i, id, "cancelled"]),
    );
    const asJson = await runCli(["sweep", "results", created.id, "--json"], { env });
    expect(JSON.parse(asJson.stdout)).toEqual(lines);
  });

  it("--wait exits 3 when an element fails, names it, and writes plain progress lines when not a terminal", async () => {
    const agent = autoAgent(world.agent);
    const run = await runCli(
      ["sweep", "submit", "--wait", "--time", "5m", "--grid", "outcome=completed,failed,completed", "--", "true"],
      { env, timeoutMs: 60_000 },
    ).finally(() => agent.stop());
    expect(run.code).toBe(3);
    expect(terminalNoise(run.stderr + run.stdout)).toBe(false);
    expect(run.stderr).toMatch(/^swp_\S+ submitted: 3 elements$/m);
    expect(run.stderr).toMatch(/^swp_\S+ 3\/3 done · 0 running · 0 pending · 1 failed$/m);
    expect(run.stdout).toMatch(/^not completed\n {2}1 +job_\S+ +failed +exit 1/);
    expect(run.stdout).toMatch(/^swp_\S+ failed: 3\/3 done · 0 running · 0 pending · 1 failed$/m);
  }, 60_000);

  it("--wait exits 0 when every element completed, and --json prints every element", async () => {
    const agent = autoAgent(world.agent);
    const run = await runCli(["sweep", "submit", "--wait", "--json", "--time", "5m", "--grid", "I=1,2", "--", "true"], {
      env,
      timeoutMs: 60_000,
    }).finally(() => agent.stop());
    expect(run.code).toBe(0);
    const done = JSON.parse(run.stdout);
    expect(done).toMatchObject({ state: "completed", done: 2, total: 2 });
    expect(done.elements.map((e: { state: string }) => e.state)).toEqual(["completed", "completed"]);
  }, 60_000);

  it("draws a bar redrawn in place on a terminal", async () => {
    const agent = autoAgent(world.agent);
    const run = await runCliInTty(
      ["sweep", "submit", "--wait", "--time", "5m", "--grid", "I=1,2,3,4", "--", "true"],
      env,
    ).finally(() => agent.stop());
    expect(run.code).toBe(0);
    const redraws = run.stdout.split("\r\x1b[2K").slice(1);
    expect(redraws.some((r) => /^swp_\S+ \[[#.]{24}\] \d\/4 done · /.test(r))).toBe(true);
    expect(run.stdout).toMatch(/swp_\S+ completed: 4\/4 done/);
  }, 60_000);
});

describe("sweep submit --wait that does not see the end", () => {
  it("--timeout exits 4 naming the sweep and its counts; Ctrl-C exits 130 saying the sweep keeps running", async () => {
    const timedOut = await runCli(
      ["sweep", "submit", "--wait", "--timeout", "2s", "--time", "5m", "--grid", "T=1,2", "--", "true"],
      {
        env,
      },
    );
    expect(timedOut.code).toBe(4);
    const lines = timedOut.stderr.trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(
      /^slurmgate: sweep (swp_\S+) is still active after 2s \(0\/2 done · 0 running · 2 pending · 0 failed\)$/,
    );
    const interrupted = await runCli(["sweep", "submit", "--wait", "--time", "5m", "--grid", "T=3,4", "--", "true"], {
      env,
      sigintAfterMs: 4_000,
    });
    expect(interrupted.code).toBe(130);
    const last = interrupted.stderr.trimEnd().split("\n").at(-1) ?? "";
    expect(last).toMatch(
      /^slurmgate: interrupted \(the sweep keeps running; stop it with: slurmgate sweep cancel swp_\S+\)$/,
    );
    const id = /(swp_\S+)\)$/.exec(last)?.[1] ?? "";
    expect((await world.user.getSweep(id)).state).toBe("active");
    await world.user.cancelSweep(id);
    await world.user.cancelSweep(/(swp_\S+)/.exec(lines.at(-1) ?? "")?.[1] ?? "");
  }, 30_000);
});

describe("show, ls, help", () => {
  it("show lists the first 50 elements and says how to see all; --all pages through every one; ls lists newest first", async () => {
    const big = await runCli(
      [
        "sweep",
        "submit",
        "-q",
        "--time",
        "5m",
        "--grid",
        `I=${Array.from({ length: 60 }, (_, i) => i).join(",")}`,
        "--",
        "true",
      ],
      { env },
    );
    expect(big.code).toBe(0);
    const id = big.stdout.trim();
    expect(id).toMatch(/^swp_/);
    const first = await runCli(["sweep", "show", id], { env });
    expect(first.stdout).toContain("(50 of 60 shown; --all for every element)");
    const all = await runCli(["sweep", "show", id, "--all", "--json"], { env });
    const detail = JSON.parse(all.stdout);
    expect(detail.elements.map((e: { index: number }) => e.index)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(detail.nextCursor).toBeNull();
    const listed = await runCli(["sweep", "ls", "--limit", "1"], { env });
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[1]).toMatch(new RegExp(`^${id} +active +0/60 `));
    await world.user.cancelSweep(id);
  });

  it("sweep --help and sweep submit --help show usage and examples; sweep alone is bad usage", async () => {
    for (const args of [
      ["sweep", "--help"],
      ["sweep", "submit", "--help"],
    ]) {
      const run = await runCli(args, { env });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: slurmgate sweep submit/);
      expect(run.stdout).toContain("Examples:");
    }
    expect((await runCli(["sweep"], { env })).code).toBe(2);
  });
});

describe("bad input: one line, non-zero exit", () => {
  const cases: [string, string[], number, RegExp][] = [
    ["--grid without =", ["--grid", "lr"], 2, /--grid wants NAME=VALUE\[,VALUE…\], got "lr"/],
    ["a repeated --grid name", ["--grid", "lr=1", "--grid", "lr=2"], 2, /--grid lr is given twice/],
    ["--grid with no values", ["--grid", "lr="], 2, /--grid lr= has no values/],
    [
      "--max-parallel not a number",
      ["--grid", "lr=1", "--max-parallel", "three"],
      2,
      /--max-parallel wants a whole number/,
    ],
  ];
  for (const [what, args, code, message] of cases) {
    it(what, async () => {
      const run = await runCli(["sweep", "submit", "--time", "5m", ...args, "--", "true"], { env });
      expect(run.code).toBe(code);
      expect(oneLine(run.stderr)).toMatch(message);
      expect(run.stdout).toBe("");
    });
  }

  it("a grid past the limit is the gateway's refusal naming grid, exit 1", async () => {
    const side = Math.ceil(Math.sqrt(MAX_SWEEP_ELEMENTS)) + 1;
    const values = Array.from({ length: side }, (_, i) => i).join(",");
    const run = await runCli(
      ["sweep", "submit", "--time", "5m", "--grid", `A=${values}`, "--grid", `B=${values}`, "--", "true"],
      {
        env,
      },
    );
    expect(run.code).toBe(1);
    expect(oneLine(run.stderr)).toMatch(/grid.*\(422 validation_failed\)$/);
  });

  it("an unknown sweep command, a missing id, an unreadable file, another user's sweep", async () => {
    const unknown = await runCli(["sweep", "sumbit"], { env });
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown.stderr)).toContain('unknown sweep command "sumbit"');
    const missing = await runCli(["sweep", "show"], { env });
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toContain("missing SWEEP_ID");
    const nofile = await runCli(["sweep", "submit", join(dir, "nope.yaml"), "--grid", "a=1"], { env });
    expect(nofile.code).toBe(1);
    expect(oneLine(nofile.stderr)).toContain("cannot read");
    const absent = await runCli(["sweep", "results", "swp_00000000000000000000000000"], { env });
    expect(absent.code).toBe(1);
    expect(oneLine(absent.stderr)).toContain("(404 not_found)");
  });
});
