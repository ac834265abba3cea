/**
 * Test helper: render a sweep batch (one array script, per-element files, per-index files), write
 * it the way the agent does, and run one array task with plain bash as slurmd would.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { JOB_FILES } from "../../../agent/render/data-files.ts";
import { renderArrayElement, renderArrayScript } from "../../../agent/render/render-batch-array.ts";
import { JobSpec, type JobSpecInput } from "../../../schemas/job.ts";
import { runBatchScript } from "./run-rendered.ts";

export const BATCH_ID = "bat_0123456789abcdefghij";

/** A job id for element `i` of a test batch. */
export const elementJobId = (i: number) => `job_${String(i).padStart(4, "0")}0123456789abcdef`;

export type WrittenBatch = { script: string; batchDir: string; jobDirs: string[]; scriptText: string };

/** Renders and writes a batch of `specs` (element i at array index `indexes[i]`, default i) under `root`. */
export async function writeBatch(
  root: string,
  specs: JobSpecInput[],
  options: { indexes?: number[]; maxParallel?: number | null; apptainerBin?: string; workdir?: string | null } = {},
): Promise<WrittenBatch> {
  const batchDir = join(root, BATCH_ID);
  await mkdir(batchDir, { recursive: true });
  const indexes = options.indexes ?? specs.map((_, i) => i);
  const jobDirs: string[] = [];
  for (const [i, input] of specs.entries()) {
    const spec = JobSpec.parse(input);
    const jobDir = join(root, elementJobId(i));
    await mkdir(jobDir, { recursive: true });
    const el = renderArrayElement({
      index: indexes[i]!,
      jobId: elementJobId(i),
      attempt: 1,
      spec,
      jobDir,
      previousJobDir: null,
      workdir: options.workdir ?? jobDir,
      secretsFile: null,
    });
    for (const f of el.files) {
      await writeFile(join(jobDir, f.name), f.data, { mode: f.mode });
    }
    await writeFile(join(batchDir, el.indexFile.name), el.indexFile.data, { mode: el.indexFile.mode });
    jobDirs.push(jobDir);
  }
  const rendered = renderArrayScript({
    batch: { id: BATCH_ID, maxParallel: options.maxParallel ?? null },
    batchDir,
    spec: JobSpec.parse(specs[0]),
    indexes,
    workdir: options.workdir ?? null,
    apptainerBin: options.apptainerBin ?? "apptainer",
  });
  const script = join(batchDir, JOB_FILES.script);
  await writeFile(script, rendered.script, { mode: 0o700 });
  return { script, batchDir, jobDirs, scriptText: rendered.script };
}

/** Runs array task `task` of a written batch; returns the exit code and the element's own log files. */
export async function runTask(batch: WrittenBatch, task: number, jobDir: string) {
  const result = await runBatchScript(batch.script, {
    SLURM_ARRAY_TASK_ID: String(task),
    SLURM_ARRAY_JOB_ID: "4242",
  });
  const read = (name: string) => readFile(join(jobDir, name), "utf8").catch(() => null);
  return {
    code: result.code,
    /** What the wrapper itself printed before it moved to the element's logs. */
    early: result.stdout + result.stderr,
    stdout: await read("stdout"),
    stderr: await read("stderr"),
    exitcode: await read("exitcode"),
  };
}
