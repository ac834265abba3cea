/**
 * A sweep batch rendered as one array and run task by task with bash: each task becomes its element
 * (argv, env, job directory, logs, exit file) through the per-index data file, and a tampered or
 * missing per-index file makes the task fail without running anything.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeNulList } from "../../agent/render/data-files.ts";
import { batchTag, formatIndexes } from "../../agent/render/directives.ts";
import { RenderError } from "../../agent/render/errors.ts";
import { renderArrayElement, renderArrayScript } from "../../agent/render/render-batch-array.ts";
import { JobSpec } from "../../schemas/job.ts";
import { BATCH_ID, elementJobId, runTask, writeBatch } from "./helpers/run-batch.ts";
import { NODE, PROBE, type ProbeOutput, bashSyntaxCheck } from "./helpers/run-rendered.ts";

let root = "";
let n = 0;
const fresh = async () => {
  const dir = join(root, `b${n++}`);
  return dir;
};
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-batch-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const element = (i: number) => ({
  name: `sweep-${i}`,
  command: [NODE, PROBE, `--seed=${i}`, `it's $(rm -rf /) ${i}`],
  env: { SEED: String(i), LR: i === 1 ? "0.01; touch /tmp/pwned" : "0.1" },
  labels: { SEED: String(i) },
});

describe("the array's script", () => {
  it("is one array of the batch's indexes, throttled, tagged with the batch, with Slurm's own output in the batch dir", async () => {
    const dir = await fresh();
    const batch = await writeBatch(dir, [element(0), element(1), element(2), element(3)], {
      indexes: [0, 1, 2, 4],
      maxParallel: 3,
    });
    const directives = batch.scriptText.split("\n").filter((l) => l.startsWith("#SBATCH"));
    expect(directives).toEqual([
      "#SBATCH --job-name=sweep-0",
      `#SBATCH --comment=slurmgate:batch:${BATCH_ID}`,
      "#SBATCH --export=NONE",
      "#SBATCH --no-requeue",
      `#SBATCH --chdir=${batch.batchDir}`,
      `#SBATCH --output=${batch.batchDir}/stdout.%a`,
      `#SBATCH --error=${batch.batchDir}/stderr.%a`,
      "#SBATCH --array=0-2,4%3",
    ]);
    // No element's value is in the script text: it is the same for any elements.
    for (const value of ["--seed=1", "0.01", "sweep-1", elementJobId(1)]) {
      expect(batch.scriptText).not.toContain(value);
    }
    await bashSyntaxCheck(batch.script);
  });

  it("folds indexes into ranges and refuses what is not an index list", () => {
    expect(formatIndexes([7, 0, 1, 2, 5, 8, 2])).toBe("0-2,5,7-8");
    expect(formatIndexes([3])).toBe("3");
    expect(() => formatIndexes([])).toThrow(RenderError);
    expect(() => formatIndexes([-1])).toThrow(RenderError);
    expect(() => formatIndexes([1.5])).toThrow(RenderError);
  });

  it("refuses a batch id that is not one, an array spec, and a relative batch dir", () => {
    const spec = JobSpec.parse(element(0));
    const base = { batch: { id: BATCH_ID, maxParallel: null }, batchDir: "/s/u/b", spec, indexes: [0], workdir: null };
    expect(() => batchTag("bat_x;rm")).toThrow(RenderError);
    expect(() =>
      renderArrayScript({ ...base, batch: { id: "bat_$(x)", maxParallel: null }, apptainerBin: "a" }),
    ).toThrow(RenderError);
    expect(() =>
      renderArrayScript({ ...base, spec: { ...spec, array: { indexes: "0-1" } }, apptainerBin: "apptainer" }),
    ).toThrow(RenderError);
    expect(() => renderArrayScript({ ...base, batchDir: "s/u/b", apptainerBin: "apptainer" })).toThrow(RenderError);
  });
});

describe("each task is its element", () => {
  it("delivers the element's argv, env and job directory exactly, with its logs and exit file in its own directory", async () => {
    const dir = await fresh();
    const specs = [element(0), element(1), element(2)];
    const batch = await writeBatch(dir, specs);
    for (const [i, spec] of specs.entries()) {
      const jobDir = batch.jobDirs[i]!;
      const ran = await runTask(batch, i, jobDir);
      expect(ran.code, ran.early + (ran.stderr ?? "")).toBe(0);
      expect(ran.early).toBe("");
      const probe = JSON.parse(ran.stdout ?? "") as ProbeOutput;
      expect(probe.argv).toEqual(spec.command.slice(2));
      expect(probe.cwd).toBe(jobDir);
      expect(probe.env).toMatchObject({
        ...spec.env,
        SLURMGATE_JOB_ID: elementJobId(i),
        SLURMGATE_JOB_DIR: jobDir,
        SLURMGATE_RESULT: `${jobDir}/result.json`,
        SLURMGATE_ATTEMPT: "1",
      });
      expect(ran.exitcode).toBe("0\n");
      // Plain-job file names: no task suffix anywhere for an element.
      expect(existsSync(join(jobDir, `exitcode.${i}`))).toBe(false);
    }
    expect(existsSync("/tmp/pwned")).toBe(false);
  });

  it("writes the payload's exit status to the element's exit file and its stderr to the element's stderr", async () => {
    const dir = await fresh();
    const specs = [0, 1].map((i) => ({
      name: "e",
      command: ["bash", "-c", 'echo "to stderr $SEED" >&2; exit "$CODE"'],
      env: { SEED: String(i), CODE: String(i * 3) },
    }));
    const batch = await writeBatch(dir, specs);
    const ran = await runTask(batch, 1, batch.jobDirs[1]!);
    expect(ran).toMatchObject({ code: 3, exitcode: "3\n", stderr: "to stderr 1\n", stdout: "" });
    expect(await readFile(join(batch.jobDirs[0]!, "env.nul"), "utf8")).toContain("CODE=0");
    expect(existsSync(join(batch.jobDirs[0]!, "exitcode"))).toBe(false);
  });

  it("binds each element's own job directory into its container and starts there", async () => {
    const dir = await fresh();
    const image = join(root, "x.sif");
    await writeFile(image, "");
    const runtime = join(root, "fake-apptainer.cjs");
    await writeFile(
      runtime,
      `#!${NODE}\nprocess.stdout.write(JSON.stringify({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }));\n`,
      { mode: 0o755 },
    );
    const specs = [0, 1].map((i) => ({
      name: "c",
      command: ["prog", String(i)],
      container: { image, env: { INSIDE: "yes" } },
    }));
    const batch = await writeBatch(dir, specs, { apptainerBin: runtime });
    const ran = await runTask(batch, 1, batch.jobDirs[1]!);
    expect(ran.code, ran.early).toBe(0);
    const probe = JSON.parse(ran.stdout ?? "") as ProbeOutput;
    expect(probe.argv).toEqual([
      "exec",
      "--bind",
      batch.jobDirs[1],
      "--pwd",
      batch.jobDirs[1],
      "--bind",
      join(batch.jobDirs[1]!, "checkpoint"),
      image,
      "prog",
      "1",
    ]);
    expect(probe.env.INSIDE).toBe("yes");
  });
});

describe("a per-index file that is missing or not what the agent wrote", () => {
  const canary = () => join(root, "canary-ran");
  const cases: [string, (batchDir: string, jobDir: string) => Buffer | null][] = [
    ["missing", () => null],
    ["a job id with shell text", (_b, j) => encodeNulList(["job_$(touch x)", "1", j, "", j, ""])],
    ["a relative job directory", () => encodeNulList([elementJobId(0), "1", "tmp/x", "", "/tmp", ""])],
    ["an attempt that is not a number", (_b, j) => encodeNulList([elementJobId(0), "1;id", j, "", j, ""])],
    ["five fields instead of six", (_b, j) => encodeNulList([elementJobId(0), "1", j, "", j])],
    ["a relative secrets file", (_b, j) => encodeNulList([elementJobId(0), "1", j, "", j, "secrets.nul"])],
  ];
  it.each(cases)("%s: the task fails with 125 before running the payload", async (_what, make) => {
    const dir = await fresh();
    const batch = await writeBatch(dir, [{ name: "x", command: ["touch", canary()] }]);
    const data = make(batch.batchDir, batch.jobDirs[0]!);
    const indexFile = join(batch.batchDir, "element.0.nul");
    if (data === null) {
      await rm(indexFile);
    } else {
      await writeFile(indexFile, data);
    }
    const ran = await runTask(batch, 0, batch.jobDirs[0]!);
    expect(ran.code).toBe(125);
    expect(existsSync(canary())).toBe(false);
    expect(ran.early).toMatch(/slurmgate: (cannot read|malformed)/);
    // The early failure's exit file is the batch's, per task: nothing is written in an element dir.
    expect(await readFile(join(batch.batchDir, "exitcode.0"), "utf8")).toBe("125\n");
  });

  it("refuses a task id that is not a number, and a task that has no per-index file", async () => {
    const dir = await fresh();
    const batch = await writeBatch(dir, [{ name: "x", command: ["touch", canary()] }]);
    for (const task of ["0;id", "7"]) {
      const { runBatchScript } = await import("./helpers/run-rendered.ts");
      const ran = await runBatchScript(batch.script, { SLURM_ARRAY_TASK_ID: task });
      expect(ran.code).toBe(125);
    }
    expect(existsSync(canary())).toBe(false);
  });

  it("the renderer refuses an element it cannot describe safely", () => {
    const spec = JobSpec.parse({ name: "x", command: ["true"] });
    const el = {
      index: 0,
      jobId: elementJobId(0),
      attempt: 1,
      spec,
      jobDir: "/s/j",
      previousJobDir: null,
      workdir: "/s/j",
      secretsFile: null,
    };
    expect(() => renderArrayElement({ ...el, jobId: "job_$(x)" })).toThrow(RenderError);
    expect(() => renderArrayElement({ ...el, jobDir: "s/j" })).toThrow(RenderError);
    expect(() => renderArrayElement({ ...el, index: -1 })).toThrow(RenderError);
    expect(() => renderArrayElement({ ...el, attempt: 0 })).toThrow(RenderError);
    expect(() => renderArrayElement({ ...el, spec: { ...spec, command: undefined, script: "echo" } })).toThrow(
      RenderError,
    );
    expect(() => renderArrayElement({ ...el, spec: { ...spec, secrets: ["TOKEN"] } })).toThrow(RenderError);
  });
});
