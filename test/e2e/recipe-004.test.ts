/**
 * Recipe 004 (docs/recipes/004-scatter.ts) run as written on the real test clusters: a scatter over
 * three samples, one of whose inputs is missing, with a concurrency factor of 1. The shards come
 * back in sample order, the two with inputs ran the task on their copied input, the third is named
 * by its cause (setup line 2, its exit code and cp's stderr), and Slurm never ran two at once.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, SlurmgateError } from "../../client/index.ts";
import { run } from "../../docs/recipes/004-scatter.ts";
import { type E2E, REPO, slurm, slurmClusters, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
const tag = Math.random().toString(36).slice(2, 8);
let inputs: string;
let image: string;
let e2e: E2E;

beforeAll(async () => {
  inputs = mkdtempSync(join(shared, "recipe004-inputs-"));
  writeFileSync(join(inputs, "NA12878.bam"), "x".repeat(78));
  writeFileSync(join(inputs, "NA12891.bam"), "x".repeat(91));
  mkdirSync(join(shared, "images"), { recursive: true });
  image = join(shared, "images", `samtools-${tag}.sif`);
  writeFileSync(image, "");
  e2e = await startE2E();
  const apptainer = join(REPO, "test/e2e/bin/apptainer");
  e2e.startAgent("alpha", { SLURMGATE_APPTAINER: apptainer });
  e2e.startAgent("beta", { SLURMGATE_APPTAINER: apptainer });
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
  rmSync(inputs, { recursive: true, force: true });
  rmSync(image, { force: true });
});

/** Runs the recipe as its users would (`tsx docs/recipes/004-scatter.ts`); the gateway lives in this process, so never spawnSync. */
function runMain(env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "docs/recipes/004-scatter.ts")], {
    cwd: REPO,
    env,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.once("close", (status) => resolve({ status, stdout, stderr })));
}

/** Stands in for `module load` and `samtools flagstat`: plain argv, slow enough to overlap if allowed. */
const testOptions = () => ({
  image,
  inputs,
  setup: ["umask 077"],
  task: ["bash", "-c", 'sleep 3; wc -c < "$1"', "flagstat", "{SAMPLE}.bam"],
});

describe("recipe 004: a scatter with a concurrency factor", () => {
  it("runs the shards in order, at most one at a time, and names the failed one by its cause", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const shards = await run(client, { ...testOptions(), concurrency: 1 });

    expect(shards.map((s) => [s.sample, s.state, s.code, s.exitCode])).toEqual([
      ["NA12878", "completed", null, 0],
      ["NA12891", "completed", null, 0],
      ["NA12892", "failed", "setup_failed", 1],
    ]);
    expect(shards[0]!.output).toBe("78\n");
    expect(shards[1]!.output).toBe("91\n");
    // The cause, in words: which setup line, its exit code and what cp said.
    expect(shards[2]!.reason).toMatch(
      /^setup line 2 exited 1: cp: cannot stat '.*\/NA12892\.bam': No such file or directory/,
    );
    expect(shards[2]!.output).toBe("");

    // The concurrency factor held in Slurm: no shard started before the one before it ended.
    const elements = await Promise.all(shards.map((s) => client.get(s.jobId)));
    // The sweep's results stream says why too, so `slurmgate sweep results` does.
    const lines = [];
    for await (const line of client.sweepResults(elements[0]!.sweep!.id)) {
      lines.push([line.state, line.code, line.reason]);
    }
    expect(lines).toEqual(shards.map((s) => [s.state, s.code, s.reason]));
    const slurmIds = elements.map((j) => j.slurmJobId!);
    expect(new Set(slurmIds.map((id) => id.split("_")[0])).size).toBe(1);
    const acct = slurm("alpha", "sacct", [
      "-X",
      "-P",
      "-n",
      "-o",
      "JobID,Start,End",
      "-j",
      slurmIds[0]!.split("_")[0]!,
    ]);
    const spans = acct
      .trim()
      .split("\n")
      .map((line) => line.split("|"))
      .filter(([id]) => slurmIds.includes(id!))
      .map(([, start, end]) => [Date.parse(`${start}Z`), Date.parse(`${end}Z`)] as const)
      .sort((a, b) => a[0] - b[0]);
    expect(spans).toHaveLength(3);
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    }
  }, 300_000);

  it("refuses a concurrency factor of 0 before anything is stored, naming the field", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const refused = await run(client, { ...testOptions(), concurrency: 0 }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(SlurmgateError);
    expect(refused).toMatchObject({ status: 422, field: "body.maxParallel" });
  });

  it("as a command with its real defaults, prints each shard's cause and exits 3 when shards fail", async () => {
    // No `module` command on the test clusters: every shard fails at setup line 1, and says so.
    const cli = await runMain({ ...process.env, SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.alice });
    expect(cli.status, cli.stderr).toBe(3);
    const lines = cli.stdout.trim().split("\n");
    expect(lines.map((line) => line.split(":")[0])).toEqual(["NA12878", "NA12891", "NA12892"]);
    for (const line of lines) {
      expect(line).toMatch(/^NA\d+: failed \[setup_failed\] setup line 1 exited 127: .*module: command not found$/);
    }
  }, 240_000);

  it("as a command without SLURMGATE_URL, says what to set and exits 2", async () => {
    const env = { ...process.env };
    delete env.SLURMGATE_URL;
    const cli = await runMain(env);
    expect(cli.status).toBe(2);
    expect(cli.stderr).toContain("set SLURMGATE_URL");
  });
});
