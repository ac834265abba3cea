/**
 * Renders a lease into a batch script plus the data files its fixed wrapper reads.
 *
 * How user strings reach the job (DESIGN invariant 4, RELIABILITY §4.4):
 * - Values that must be on `#SBATCH` lines (name, partition, account, qos, sizes, paths, extra
 *   args) are re-validated against the schema patterns; nothing else is accepted.
 * - Values the job consumes (argv, env values, container env, setup lines, script body) are
 *   written to NUL-delimited files in the job directory and never interpolated into shell text.
 *   The script itself contains only validated, single-quoted values.
 *
 * How the environment is handled:
 * - `--export=NONE` (in the script and on the command line): nothing from the submitting process
 *   (the agent, its gateway token) reaches the job or Slurm's stored job environment.
 * - The wrapper scrubs the job's starting environment to SLURM_* plus a login baseline (HOME,
 *   USER, LOGNAME, PATH, SHELL, TMPDIR, LANG, LC_*, TZ, TERM), adds SLURMGATE_JOB_ID,
 *   SLURMGATE_JOB_DIR, SLURMGATE_RESULT (and SLURMGATE_SECRETS_FILE), the secrets (exported by
 *   the shell from the 0600 file, never on a command line), then `spec.env`, which wins last.
 *   Setup lines may add variables (module load); exported shell functions are not carried.
 */
import type { Lease } from "../../schemas/agent.ts";
import type { JobSpec } from "../../schemas/job.ts";
import { ABSOLUTE_PATH } from "../../schemas/patterns.ts";
import { type StagedCache, cacheEnv, withCacheBinds } from "./caches.ts";
import { planContainer } from "./container.ts";
import { JOB_FILES, encodeEnvEntries, encodeNulList } from "./data-files.ts";
import { buildDirectives } from "./directives.ts";
import { MAX_ARGV_BYTES, checkEnvMap, checkSecretNames } from "./env-policy.ts";
import { RenderError, requireMatch } from "./errors.ts";
import { launcherParams } from "./launcher.ts";
import { parseJobSpec } from "./parse-spec.ts";
import { serviceItems, serviceSecretNames } from "./services.ts";
import { TEMPLATE_VERSION, renderWrapper } from "./template.ts";

/** Everything the renderer needs; paths are absolute and already confined by the caller. */
export interface RenderInput {
  lease: Pick<Lease, "jobId" | "attempt" | "spec"> & Partial<Pick<Lease, "dependsOnSlurmIds">>;
  /** `<shared root>/<owner>/<jobId>` (`<jobId>.attempt-<n>` after the first attempt), created and realpath-checked. */
  jobDir: string;
  /** The directory of the attempt before this one (attempt > 1), exported as SLURMGATE_PREVIOUS_JOB_DIR. */
  previousJobDir?: string | null;
  /** `spec.workdir` resolved under the shared root (absolute); required when the spec sets workdir. */
  workdir?: string | null;
  /** The 0600 NUL-delimited `NAME=value` file the agent wrote, or null when no secrets were asked. */
  secretsFile: string | null;
  /** The 0600 file with the services' secrets (agent/secrets.ts), or null when no service asks for any. */
  serviceSecretsFile?: string | null;
  /** Apptainer (or singularity) program: an absolute path or a bare name looked up on PATH. */
  apptainerBin: string;
  /** Option names this cluster allows in `extraSbatchArgs` (agent-side allow-list). */
  allowedSbatchArgs?: readonly string[];
  /** `spec.cache` resolved under the agent's cache root (agent/stage.ts): env and read-only binds. */
  caches?: readonly StagedCache[];
}

/** A data file to write into the job directory (mode 0600) before calling sbatch. */
export interface RenderedFile {
  /** File name relative to the job directory (one of {@link JOB_FILES}). */
  name: string;
  data: Buffer;
  mode: number;
  /**
   * The wrapper reads this file missing as this file empty, so an empty one need not be written
   * into a directory made for this very submission (agent/submit.ts). Where the directory may
   * hold an older copy, it must still be written, empty, over it.
   */
  optional?: true;
}

/** The renderer's output. */
export interface RenderedJob {
  /** The batch script; write it to `<jobDir>/${JOB_FILES.script}`. */
  script: string;
  /** Options that must also be on the sbatch command line (they beat SBATCH_* variables). */
  sbatchArgs: string[];
  /** Data files; all of them are always returned (empty when unused) so stale ones can be overwritten. */
  files: RenderedFile[];
}

/**
 * Renders a lease into a batch script; throws {@link RenderError} on anything it will not emit.
 * @example
 * const job = renderBatchScript({ lease, jobDir: "/scratch/alice/job_…", secretsFile: null, apptainerBin: "apptainer" });
 * for (const f of job.files) await exec.writeFile(`${jobDir}/${f.name}`, f.data, f.mode);
 */
export function renderBatchScript(input: RenderInput): RenderedJob {
  const parsed = parseJobSpec(input.lease.spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") ?? "";
    throw new RenderError("invalid_spec", `${field}: ${issue?.message ?? "invalid job spec"}`, field);
  }
  const spec = parsed.data;
  const jobDir = requireMatch(input.jobDir, ABSOLUTE_PATH, "jobDir", "path_outside_roots");
  const workdir = resolveWorkdir(spec, input.workdir ?? null, jobDir);
  const secretsFile = checkSecrets(spec, input.secretsFile);
  checkPayload(spec);
  const command = spec.command;
  const caches = input.caches ?? [];
  const container = planContainer(withCacheBinds(spec, caches), { apptainerBin: input.apptainerBin, jobDir, workdir });
  const services = serviceItems(spec, { apptainerBin: input.apptainerBin, jobDir, workdir });
  const serviceSecretsFile = checkServiceSecrets(spec, input.serviceSecretsFile ?? null);
  const launcher = launcherParams(spec);

  const directives = buildDirectives({
    spec,
    jobId: input.lease.jobId,
    attempt: input.lease.attempt,
    jobDir,
    workdir,
    dependsOnSlurmIds: input.lease.dependsOnSlurmIds ?? [],
    allowedSbatchArgs: input.allowedSbatchArgs ?? [],
  });
  const header = scriptHeader(directives);
  const previousJobDir =
    input.previousJobDir == null
      ? null
      : requireMatch(input.previousJobDir, ABSOLUTE_PATH, "previousJobDir", "path_outside_roots");
  const wrapper = renderWrapper({
    jobId: input.lease.jobId,
    attempt: input.lease.attempt,
    jobDir,
    previousJobDir,
    workdir,
    secretsFile,
    mode: command === undefined ? "script" : "command",
    runtimeArgv: container?.runtimeArgv ?? [],
    images: container?.images ?? { x86_64: null, aarch64: null },
    serviceSecretsFile,
    launcher,
  });
  const files = [
    ...jobDataFiles(spec, cacheEnv(caches)),
    { name: JOB_FILES.services, data: encodeNulList(services), mode: 0o600, optional: true as const },
  ];
  return { script: `${header.join("\n")}\n${wrapper}`, sbatchArgs: ["--export=NONE"], files };
}

/** The `#!/bin/bash` line, the directives and the header comment every rendered script starts with. */
export function scriptHeader(directives: readonly string[]): string[] {
  return [
    "#!/bin/bash",
    ...directives,
    `# slurmgate batch script, template v${TEMPLATE_VERSION}. Generated; do not edit.`,
    "# Every value below matched a strict pattern and is single-quoted. User strings (argv, env",
    "# values, setup lines, script body) are read from NUL-delimited files in the job directory.",
  ];
}

/**
 * The data files the wrapper reads from a job's directory (all of them, empty when unused). Each
 * the wrapper reads missing as empty is `optional` (template.ts sg_read_opt, or its `-s` tests); the
 * payload is, only when the job runs a command: a script job's bash needs the file, even empty.
 */
export function jobDataFiles(spec: JobSpec, platformEnv: Readonly<Record<string, string>> = {}): RenderedFile[] {
  const file = (name: string, data: Buffer, optional = true): RenderedFile => ({
    name,
    data,
    mode: 0o600,
    ...(optional ? { optional } : {}),
  });
  return [
    file(JOB_FILES.argv, encodeNulList(spec.command ?? [])),
    file(JOB_FILES.env, encodeEnvEntries({ ...platformEnv, ...spec.env })),
    file(JOB_FILES.containerEnv, encodeEnvEntries(spec.container?.env ?? {})),
    file(JOB_FILES.setup, encodeNulList(spec.setup)),
    file(JOB_FILES.payload, Buffer.from(spec.script ?? "", "utf8"), spec.command !== undefined),
  ];
}

/** What the wrapper will hand to the payload (argv, env, setup, script) must be deliverable exactly. */
export function checkPayload(spec: JobSpec): void {
  checkUserText(spec);
  checkEnvMap(spec.env, "env");
  checkEnvMap(spec.container?.env ?? {}, "container.env");
  const command = spec.command;
  if (command !== undefined && spec.container === undefined && (command[0] ?? "").includes("=")) {
    // /usr/bin/env would take it for an assignment rather than the program to run.
    throw new RenderError("invalid_spec", "command.0: the program name must not contain '='", "command.0");
  }
}

function resolveWorkdir(spec: JobSpec, workdir: string | null, jobDir: string): string {
  if (spec.workdir !== undefined && workdir === null) {
    throw new RenderError("path_outside_roots", "workdir: not resolved under a shared root", "workdir");
  }
  return requireMatch(workdir ?? jobDir, ABSOLUTE_PATH, "workdir", "path_outside_roots");
}

export function checkSecrets(spec: JobSpec, secretsFile: string | null): string | null {
  checkSecretNames(spec.secrets, spec.env);
  if (spec.secrets.length > 0 && secretsFile === null) {
    throw new RenderError("secret_missing", "secrets were requested but no secrets file was written", "secrets");
  }
  return secretsFile === null ? null : requireMatch(secretsFile, ABSOLUTE_PATH, "secretsFile", "path_outside_roots");
}

function checkServiceSecrets(spec: JobSpec, file: string | null): string | null {
  if (serviceSecretNames(spec).length > 0 && file === null) {
    throw new RenderError(
      "secret_missing",
      "services ask for secrets but no service secrets file was written",
      "services",
    );
  }
  return file === null ? null : requireMatch(file, ABSOLUTE_PATH, "serviceSecretsFile", "path_outside_roots");
}

/** Free text must be well-formed Unicode: a lone surrogate cannot be written as UTF-8 and read back. */
function checkUserText(spec: JobSpec): void {
  const loneSurrogate = /\p{Cs}/u;
  const check = (value: string, field: string) => {
    if (loneSurrogate.test(value)) {
      throw new RenderError("invalid_spec", `${field}: not well-formed Unicode`, field);
    }
  };
  let argvBytes = 0;
  spec.command?.forEach((arg, i) => {
    check(arg, `command.${i}`);
    argvBytes += Buffer.byteLength(arg) + 1;
  });
  if (argvBytes > MAX_ARGV_BYTES) {
    throw new RenderError("invalid_spec", `command: more than ${MAX_ARGV_BYTES} bytes`, "command");
  }
  spec.setup.forEach((line, i) => {
    check(line, `setup.${i}`);
  });
  if (spec.script !== undefined) {
    check(spec.script, "script");
  }
  for (const [name, value] of Object.entries(spec.env)) {
    check(value, `env.${name}`);
  }
  for (const [name, value] of Object.entries(spec.container?.env ?? {})) {
    check(value, `container.env.${name}`);
  }
}
