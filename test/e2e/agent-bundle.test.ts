/**
 * The single-file agent (`npm run build:agent`): built with esbuild, copied alone into an empty
 * directory (no node_modules anywhere above it), run with the machine's own Node 20 at
 * /usr/bin/node (a login node's old Node, not the dev Node). It must print its help, pass doctor,
 * and run real `--once` cycles against a test gateway, locally and over SSH (ssh2 inlined).
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isTerminal } from "../../schemas/index.ts";
import { buildAgent } from "../../scripts/build-agent.ts";
import { type E2E, slurmJobsTagged, sshAgentEnv, startE2E } from "./harness.ts";

const NODE = "/usr/bin/node";
let e2e: E2E;
let bundle: string;
let ssh: Record<string, string>;

beforeAll(async () => {
  const built = await buildAgent(join(mkdtempSync(join(tmpdir(), "slurmgate-build-")), "slurmgate-agent.mjs"));
  const lonely = mkdtempSync(join(tmpdir(), "slurmgate-bundle-"));
  bundle = join(lonely, "slurmgate-agent.mjs");
  copyFileSync(built.file, bundle);
  ssh = sshAgentEnv();
  e2e = await startE2E();
});

afterAll(async () => {
  await e2e?.close();
});

function runBundle(args: string[], env: Record<string, string>) {
  const child = spawn(NODE, [bundle, ...args], { cwd: "/", env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  return new Promise<{ code: number | null; output: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, output })),
  );
}

describe("the single-file agent on the machine's Node 20", () => {
  it("is one executable file with no node_modules around it", () => {
    expect(existsSync(NODE)).toBe(true);
    const version = spawnSync(NODE, ["--version"], { encoding: "utf8" }).stdout.trim();
    expect(Number(/^v(\d+)/.exec(version)?.[1])).toBeGreaterThanOrEqual(20);
    for (let dir = dirname(bundle); dir !== "/"; dir = dirname(dir)) {
      expect(existsSync(join(dir, "node_modules")), dir).toBe(false);
    }
    expect(statSync(bundle).mode & 0o111).not.toBe(0);
  });

  it("prints its help", async () => {
    const { code, output } = await runBundle(["--help"], { PATH: "/usr/bin:/bin" });
    expect(code).toBe(0);
    expect(output).toMatch(/^usage: slurmgate agent/);
  });

  it("passes doctor over SSH", async () => {
    const { code, output } = await runBundle(["doctor"], e2e.agentEnv("alpha", ssh));
    expect(output).toMatch(/^ok {3}ssh: connected/m);
    expect(output).toMatch(/^ok {3}token: agent token bound to alpha/m);
    expect(code, output).toBe(0);
  });

  it.each([
    ["locally", "beta", false],
    ["over SSH", "alpha", true],
  ] as const)("runs real --once cycles %s until the job is done", async (_how, cluster, overSsh) => {
    const job = await e2e.submit(e2e.alice, {
      name: `bundle-${cluster}`,
      cluster,
      command: ["bash", "-c", "echo from-the-bundle"],
    });
    const env = e2e.agentEnv(cluster, overSsh ? ssh : {});
    let last = { code: null as number | null, output: "" };
    for (let round = 0; round < 30; round++) {
      last = await runBundle(["--once", "--status"], env);
      expect(last.code, last.output).toBe(0);
      const res = await fetch(`${e2e.url}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${e2e.alice}` } });
      if (isTerminal(((await res.json()) as { state: Parameters<typeof isTerminal>[0] }).state)) {
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const done = await e2e.waitTerminal(e2e.alice, job.id, 5_000);
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("from-the-bundle\n");
    expect(slurmJobsTagged(cluster, job.id)).toEqual([done.slurmJobId]);
    const status = JSON.parse(last.output.split("\n").find((l) => l.startsWith('{"agentId"')) ?? "{}");
    expect(status).toMatchObject({ cluster, mode: overSsh ? "ssh" : "local" });
  });
});
