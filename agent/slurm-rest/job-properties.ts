/**
 * sbatch options as slurmrestd job properties (OpenAPI v0.0.38).
 *
 * slurmrestd 22.05 ignores the script's `#SBATCH` lines: every property must be in the request's
 * `job` object (checked against the real daemon: a `--comment` directive alone leaves the comment
 * empty, so the exactly-once tag would be lost). So the directives are read here, the way sbatch
 * reads them (until the first line that is not a comment), then the command-line options, which
 * win as they do for sbatch. An option without a known property is refused, never dropped.
 */
import { memoryMegabytes } from "../../schemas/patterns.ts";

/** The body of `POST /slurm/v0.0.38/job/submit`. */
export type RestSubmission = { script: string; job: Record<string, unknown> };

type Translate = (value: string | undefined, option: string) => Record<string, unknown>;

const text =
  (property: string): Translate =>
  (value, option) => ({ [property]: need(value, option) });
const integer =
  (property: string): Translate =>
  (value, option) => ({ [property]: whole(need(value, option), option) });
const flag =
  (property: string, set: unknown): Translate =>
  (value, option) => {
    if (value !== undefined) {
      throw new Error(`${option} takes no value`);
    }
    return { [property]: set };
  };
const megabytes =
  (property: string): Translate =>
  (value, option) => {
    const mb = memoryMegabytes(need(value, option));
    if (mb === undefined) {
      throw new Error(`${option}: ${JSON.stringify(value)} is not an amount of memory`);
    }
    return { [property]: mb };
  };

/** Every option the backend can send, by its full name; sbatch's abbreviations are not accepted here. */
const OPTIONS: Readonly<Record<string, Translate>> = {
  "--job-name": text("name"),
  "--comment": text("comment"),
  "--export": (value, option) => {
    // The renderer only ever sends NONE; the environment is then Slurm's own variables, as with sbatch.
    if (need(value, option) !== "NONE") {
      throw new Error(`${option}=${value}: only --export=NONE is supported by the REST backend`);
    }
    return { environment: { SLURM_EXPORT_ENV: "NONE" } };
  },
  "--no-requeue": flag("requeue", false),
  "--requeue": flag("requeue", true),
  "--hold": flag("hold", true),
  "--chdir": text("current_working_directory"),
  "--output": text("standard_output"),
  "--error": text("standard_error"),
  "--input": text("standard_input"),
  "--partition": text("partition"),
  "--account": text("account"),
  "--qos": text("qos"),
  "--reservation": text("reservation"),
  "--wckey": text("wckey"),
  "--nodes": (value, option) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(need(value, option));
    if (!m) {
      throw new Error(`${option}: ${JSON.stringify(value)} is not a node count`);
    }
    return { nodes: [Number(m[1]), Number(m[2] ?? m[1])] };
  },
  "--ntasks": integer("tasks"),
  "--ntasks-per-node": integer("tasks_per_node"),
  "--cpus-per-task": integer("cpus_per_task"),
  "--mem": megabytes("memory_per_node"),
  "--mem-per-cpu": megabytes("memory_per_cpu"),
  "--mem-per-gpu": megabytes("memory_per_gpu"),
  "--gres": text("gres"),
  "--gpus": text("gpus"),
  "--gpus-per-node": text("gpus_per_node"),
  "--gpus-per-task": text("gpus_per_task"),
  "--cpus-per-gpu": text("cpus_per_gpu"),
  "--time": (value, option) => ({ time_limit: minutes(need(value, option), option) }),
  "--time-min": (value, option) => ({ time_minimum: minutes(need(value, option), option) }),
  "--array": text("array"),
  "--dependency": text("dependency"),
  "--constraint": text("constraints"),
  "--prefer": text("prefer"),
  "--licenses": text("licenses"),
  "--exclusive": (value) => ({ exclusive: value ?? "true" }),
  "--nice": integer("nice"),
  "--begin": text("begin_time"),
  "--mail-type": text("mail_type"),
  "--mail-user": text("mail_user"),
  "--signal": text("signal"),
  "--kill-on-invalid-dep": (value, option) => ({ kill_on_invalid_dependency: yesNo(need(value, option), option) }),
};

/**
 * The submission for `script` with sbatch's command-line `args`.
 * @example
 * buildRestSubmission("#!/bin/bash\n#SBATCH --comment=slurmgate:job_x:1\ntrue\n", ["--export=NONE"])
 * // => { script, job: { comment: "slurmgate:job_x:1", environment: { SLURM_EXPORT_ENV: "NONE" } } }
 */
export function buildRestSubmission(script: string, args: readonly string[]): RestSubmission {
  let job: Record<string, unknown> = {};
  for (const option of [...scriptDirectives(script), ...args]) {
    job = { ...job, ...translate(option) };
  }
  // slurmrestd refuses a job without an environment ("environment must be set").
  if (job.environment === undefined) {
    job.environment = { SLURM_EXPORT_ENV: "NONE" };
  }
  return { script, job };
}

/**
 * The `#SBATCH` options of a script, in order, as sbatch reads them: after the first line, until
 * the first line that is neither blank nor a comment; the first word after `#SBATCH` only.
 */
export function scriptDirectives(script: string): string[] {
  const options: string[] = [];
  // Line by line from the second, stopping at the first command: a rendered script is ~600 lines,
  // of which the header is a dozen, and splitting all of them cost more than the rest of the request.
  for (let start = script.indexOf("\n") + 1; start > 0 && start < script.length; ) {
    const newline = script.indexOf("\n", start);
    const end = newline < 0 ? script.length : newline;
    const trimmed = script.slice(start, end).trim();
    if (trimmed !== "" && !trimmed.startsWith("#")) {
      break;
    }
    const m = /^#SBATCH\s+(\S+)/.exec(trimmed);
    if (m?.[1]) {
      options.push(unquote(m[1]));
    }
    start = end + 1;
  }
  return options;
}

function translate(arg: string): Record<string, unknown> {
  const eq = arg.indexOf("=");
  const option = eq < 0 ? arg : arg.slice(0, eq);
  const value = eq < 0 ? undefined : arg.slice(eq + 1);
  if (option === "--uid" || option === "--gid") {
    throw new Error(`${option}: the REST backend submits as the daemon's user; it cannot act as another`);
  }
  const translator = OPTIONS[option];
  if (!translator) {
    throw new Error(`${option} has no slurmrestd job property: not supported by the REST backend`);
  }
  return translator(value, option);
}

function need(value: string | undefined, option: string): string {
  if (value === undefined || value === "") {
    throw new Error(`${option} needs a value`);
  }
  return value;
}

function whole(value: string, option: string): number {
  if (!/^\d{1,9}$/.test(value)) {
    throw new Error(`${option}: ${JSON.stringify(value)} is not a whole number`);
  }
  return Number(value);
}

function yesNo(value: string, option: string): boolean {
  if (value !== "yes" && value !== "no") {
    throw new Error(`${option}: yes or no`);
  }
  return value === "yes";
}

/** Slurm's time formats, in whole minutes: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`. */
export function minutes(value: string, option = "--time"): number {
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(value);
  if (!m) {
    throw new Error(`${option}: ${JSON.stringify(value)} is not a Slurm time`);
  }
  const [, d, a, b, c] = m;
  const n = (s: string | undefined) => Number(s ?? 0);
  let seconds: number;
  if (d !== undefined) {
    seconds = n(d) * 86_400 + n(a) * 3_600 + n(b) * 60 + n(c);
  } else if (c !== undefined) {
    seconds = n(a) * 3_600 + n(b) * 60 + n(c);
  } else if (b !== undefined) {
    seconds = n(a) * 60 + n(b);
  } else {
    seconds = n(a) * 60;
  }
  return Math.ceil(seconds / 60);
}

/** `--comment="a b"` in a directive: sbatch drops one level of quotes. */
function unquote(option: string): string {
  return option.replace(/^(--[^=]+=)(["'])(.*)\2$/, "$1$3");
}
