/**
 * `slurmgate submit`'s flags and job files → a JobSpecInput. The CLI only shapes; the gateway
 * validates (its 422 names the field), so the rules live in one place.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parse as parseYaml } from "yaml";
import type { JobSpecInput } from "../client/index.ts";
import { integer, pairs } from "./args.ts";
import { CliError, UsageError } from "./errors.ts";

export const SPEC_OPTIONS = {
  file: { type: "string", short: "f" },
  name: { type: "string", short: "n" },
  cluster: { type: "string", short: "c" },
  partition: { type: "string", short: "p" },
  account: { type: "string", short: "A" },
  qos: { type: "string" },
  profile: { type: "string" },
  time: { type: "string", short: "t" },
  nodes: { type: "string", short: "N" },
  "ntasks-per-node": { type: "string" },
  cpus: { type: "string" },
  mem: { type: "string" },
  "mem-per-cpu": { type: "string" },
  gpus: { type: "string", short: "G" },
  env: { type: "string", short: "e", multiple: true },
  label: { type: "string", short: "l", multiple: true },
  secret: { type: "string", multiple: true },
  setup: { type: "string", multiple: true },
  workdir: { type: "string", short: "w" },
  script: { type: "string" },
  image: { type: "string" },
  bind: { type: "string", multiple: true },
  array: { type: "string" },
  after: { type: "string", multiple: true },
  retries: { type: "string" },
  "sbatch-arg": { type: "string", multiple: true },
} as const;

type SpecFlags = {
  [K in keyof typeof SPEC_OPTIONS]?: (typeof SPEC_OPTIONS)[K] extends { multiple: true } ? string[] : string;
};

/** Reads a YAML or JSON job file (YAML is a superset of JSON). */
export function readJobFile(path: string, readStdin?: string): Record<string, unknown> {
  let text: string;
  try {
    text = path === "-" && readStdin !== undefined ? readStdin : readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new CliError(`${path}: not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CliError(`${path}: a job file holds one job spec object`);
  }
  return value as Record<string, unknown>;
}

/** `a100:2` → {type, count}; `2` → {count}; `a100` → {type, count: 1}. */
export function parseGpus(value: string): { type?: string; count: number } {
  const m = /^(?:(\d+)|([A-Za-z0-9][A-Za-z0-9_.-]*)(?::(\d+))?)$/.exec(value);
  if (!m) {
    throw new UsageError(`--gpus wants TYPE:COUNT, COUNT or TYPE, got ${JSON.stringify(value)}`, "submit");
  }
  if (m[1]) {
    return { count: Number(m[1]) };
  }
  return { type: m[2], count: m[3] ? Number(m[3]) : 1 };
}

function parseBind(value: string) {
  const [src = "", dst, mode] = value.split(":");
  const readonly = mode === "ro" || dst === "ro";
  return { src, ...(dst && dst !== "ro" && dst !== "rw" ? { dst } : {}), readonly };
}

function parseAfter(value: string) {
  const [job = "", condition] = value.split(":");
  return { job, ...(condition ? { condition: condition as "afterok" } : {}) };
}

const defined = <T extends Record<string, unknown>>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** A job name from the command: `python train.py` → `python`; falls back to `job`. */
function defaultName(command: string[] | undefined, script: string | undefined): string {
  const source = script ?? command?.[0] ?? "job";
  const cleaned = basename(source)
    .replace(/\.[A-Za-z0-9]+$/, "")
    .replace(/[^A-Za-z0-9_.-]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "");
  return cleaned.slice(0, 64) || "job";
}

/**
 * Builds the spec: the job file (if any), then flags on top (env and labels merge), then the
 * command after `--`.
 */
export function buildSpec(flags: SpecFlags, command: string[], stdin?: string): JobSpecInput {
  const verb = "submit";
  const file = flags.file ? readJobFile(flags.file, stdin) : {};
  const fileSpec = file as Partial<JobSpecInput>;
  if (flags.script && command.length) {
    throw new UsageError("give a command after -- or --script, not both", verb);
  }
  const script = flags.script
    ? flags.script === "-" && stdin !== undefined
      ? stdin
      : readScript(flags.script)
    : undefined;
  const resources = defined({
    ...fileSpec.resources,
    ...defined({
      time: flags.time,
      nodes: integer(verb, "--nodes", flags.nodes),
      ntasksPerNode: integer(verb, "--ntasks-per-node", flags["ntasks-per-node"]),
      cpusPerTask: integer(verb, "--cpus", flags.cpus),
      memPerNode: flags.mem,
      memPerCpu: flags["mem-per-cpu"],
      gpus: flags.gpus ? parseGpus(flags.gpus) : undefined,
    }),
  });
  const container =
    flags.image || flags.bind
      ? {
          ...fileSpec.container,
          ...defined({ image: flags.image }),
          ...(flags.bind ? { binds: flags.bind.map(parseBind) } : {}),
        }
      : fileSpec.container;
  const array = flags.array
    ? (() => {
        const [indexes = "", max] = flags.array.split("%");
        return { indexes, ...(max ? { maxParallel: integer(verb, "--array %", max) } : {}) };
      })()
    : fileSpec.array;
  const spec = {
    ...fileSpec,
    ...defined({
      cluster: flags.cluster,
      partition: flags.partition,
      account: flags.account,
      qos: flags.qos,
      profile: flags.profile,
      workdir: flags.workdir,
    }),
    ...(Object.keys(resources).length ? { resources } : {}),
    ...(command.length ? { command, script: undefined } : {}),
    ...(script !== undefined ? { script, command: undefined } : {}),
    env: { ...fileSpec.env, ...pairs(verb, "--env", flags.env) },
    labels: { ...fileSpec.labels, ...pairs(verb, "--label", flags.label) },
    ...(flags.secret ? { secrets: flags.secret } : {}),
    ...(flags.setup ? { setup: flags.setup } : {}),
    ...(container ? { container } : {}),
    ...(array ? { array } : {}),
    ...(flags.after ? { dependsOn: flags.after.map(parseAfter) } : {}),
    ...(flags.retries ? { retries: { max: integer(verb, "--retries", flags.retries) ?? 0 } } : {}),
    ...(flags["sbatch-arg"] ? { extraSbatchArgs: flags["sbatch-arg"] } : {}),
  } as JobSpecInput;
  if (!spec.command && spec.script === undefined) {
    throw new UsageError(
      "nothing to run: put the command after -- (e.g. -- python train.py), or give --script or -f",
      verb,
    );
  }
  spec.name = flags.name ?? fileSpec.name ?? defaultName(spec.command, flags.script);
  return JSON.parse(JSON.stringify(spec)) as JobSpecInput;
}

function readScript(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
}
