/**
 * Renders a sweep batch: elements that differ only in name, env, argv and labels become ONE Slurm
 * array. The array's script is the fixed wrapper in batch mode; what makes task `i` element `i` is
 * data, never shell text (DESIGN invariant 4):
 * - each element keeps its own job directory with the same data files a plain job has (argv, env,
 *   container env, setup), so its stdout, stderr, result, exit code and secrets files are its own;
 * - the batch directory holds the script and one per-index file `element.<index>.nul` (NUL-delimited:
 *   job id, attempt, job directory, previous attempt's directory, workdir, secrets file) that the
 *   wrapper reads by `$SLURM_ARRAY_TASK_ID` and checks field by field before using.
 */
import type { JobSpec } from "../../schemas/job.ts";
import { ABSOLUTE_PATH } from "../../schemas/patterns.ts";
import { planContainer } from "./container.ts";
import { encodeNulList } from "./data-files.ts";
import { buildDirectives } from "./directives.ts";
import { RenderError, requireMatch } from "./errors.ts";
import { type RenderedFile, checkPayload, checkSecrets, jobDataFiles, scriptHeader } from "./render-batch-script.ts";
import { renderWrapper } from "./template.ts";

const JOB_ID = /^job_[0-9a-z]{20,40}$/;

/** The per-index file of the element at `index`, in the batch directory. */
export function elementFileName(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0 || index > 9_999_999) {
    throw new RenderError("invalid_spec", `batch.index: ${index} is not an array index`, "batch.index");
  }
  return `element.${index}.nul`;
}

/** One element of the batch, its paths already created and confined by the caller. */
export interface ArrayElementInput {
  index: number;
  jobId: string;
  attempt: number;
  spec: JobSpec;
  jobDir: string;
  previousJobDir: string | null;
  /** Where the payload starts: the resolved `spec.workdir`, or the element's job directory. */
  workdir: string;
  secretsFile: string | null;
}

/**
 * One element's files: its data files (to write into its job directory) and its per-index file (to
 * write into the batch directory). Throws {@link RenderError} for what this element cannot carry.
 */
export function renderArrayElement(el: ArrayElementInput): { files: RenderedFile[]; indexFile: RenderedFile } {
  const spec = el.spec;
  if (spec.command === undefined || spec.array !== undefined) {
    throw new RenderError("invalid_spec", "a sweep batch element runs a command and is not an array", "command");
  }
  requireMatch(el.jobId, JOB_ID, "jobId");
  if (!Number.isSafeInteger(el.attempt) || el.attempt < 1 || el.attempt > 999_999) {
    throw new RenderError("invalid_spec", `attempt: ${el.attempt} is not an attempt number`, "attempt");
  }
  const path = (value: string, field: string) => requireMatch(value, ABSOLUTE_PATH, field, "path_outside_roots");
  const fields = [
    el.jobId,
    String(el.attempt),
    path(el.jobDir, "jobDir"),
    el.previousJobDir === null ? "" : path(el.previousJobDir, "previousJobDir"),
    path(el.workdir, "workdir"),
    checkSecrets(spec, el.secretsFile) ?? "",
  ];
  checkPayload(spec);
  return {
    files: jobDataFiles(spec),
    indexFile: { name: elementFileName(el.index), data: encodeNulList(fields), mode: 0o600 },
  };
}

/** What the array's one script needs: the parts every element shares. */
export interface ArrayScriptInput {
  batch: { id: string; maxParallel: number | null };
  /** `<shared root>/<owner>/<batch id>`, created and realpath-checked. */
  batchDir: string;
  /** The spec of any element: the gateway grouped them, and the caller re-checked, by equal common parts. */
  spec: JobSpec;
  /** The array indexes submitted (the elements that were prepared). */
  indexes: readonly number[];
  /** The resolved `spec.workdir` when the spec sets one; null: each element starts in its job directory. */
  workdir: string | null;
  apptainerBin: string;
  allowedSbatchArgs?: readonly string[];
}

/**
 * The array's batch script; write it to `<batchDir>/job.sbatch` and pass `sbatchArgs` to sbatch.
 * @example
 * renderArrayScript({ batch: { id: "bat_…", maxParallel: 3 }, batchDir, spec, indexes: [0, 1, 2], workdir: null, apptainerBin: "apptainer" })
 * // => { script: "#!/bin/bash\n#SBATCH --job-name=…\n…#SBATCH --array=0-2%3\n…", sbatchArgs: ["--export=NONE"] }
 */
export function renderArrayScript(input: ArrayScriptInput): { script: string; sbatchArgs: string[] } {
  const batchDir = requireMatch(input.batchDir, ABSOLUTE_PATH, "batchDir", "path_outside_roots");
  const workdir =
    input.workdir === null ? batchDir : requireMatch(input.workdir, ABSOLUTE_PATH, "workdir", "path_outside_roots");
  if (input.spec.workdir !== undefined && input.workdir === null) {
    throw new RenderError("path_outside_roots", "workdir: not resolved under a shared root", "workdir");
  }
  const directives = buildDirectives({
    spec: input.spec,
    jobId: "",
    attempt: 1,
    jobDir: batchDir,
    workdir,
    dependsOnSlurmIds: [],
    allowedSbatchArgs: input.allowedSbatchArgs ?? [],
    batch: { id: input.batch.id, indexes: input.indexes, maxParallel: input.batch.maxParallel },
  });
  const container = planContainer(input.spec, {
    apptainerBin: input.apptainerBin,
    jobDir: batchDir,
    workdir,
    perElement: true,
  });
  const wrapper = renderWrapper({
    jobId: "",
    attempt: 1,
    jobDir: batchDir,
    previousJobDir: null,
    workdir: "",
    secretsFile: null,
    mode: "command",
    runtimeArgv: container?.runtimeArgv ?? [],
    images: container?.images ?? { x86_64: null, aarch64: null },
    batchDir,
  });
  return { script: `${scriptHeader(directives).join("\n")}\n${wrapper}`, sbatchArgs: ["--export=NONE"] };
}
