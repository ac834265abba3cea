/**
 * "unknown field walltime; did you mean resources.time?": the message for a key a strict object
 * refused. Candidates come from the request's own schema (the refused key's siblings, then the
 * fields of sibling objects one level down), matched by case and separator (`cpus_per_task`), by
 * a small table of names other tools use (Slurm's `--mem`, `walltime`, `gres`, …), by prefix, and
 * finally by edit distance.
 */

/** Our fields (first found wins) and what other tools call them, {@link normalise}d. */
const OTHER_NAMES: [ours: string[], theirs: string][] = [
  [["time"], "walltime timelimit wallclock wallclocktime runtime duration maxtime"],
  [["memPerNode"], "mem memory ram pmem"],
  [["cpusPerTask"], "cpus cpu ncpus cores threads"],
  [["ntasksPerNode"], "ntasks tasks ntask taskspernode"],
  [["nodes"], "nnodes node numnodes nodecount"],
  [["gpus"], "gres gpu ngpus gpucount gpuspernode"],
  [["name"], "jobname job"],
  [["command"], "cmd argv args exec entrypoint run"],
  [["partition"], "queue part"],
  [["workdir"], "chdir cwd workingdir workingdirectory dir directory"],
  [["env"], "environment envvars variables vars"],
  [["image"], "sif docker img"],
  [["binds"], "mounts volumes bind bindpaths"],
  [["dependsOn"], "depends dependency dependencies after afterok"],
  [["retries", "max"], "retry maxretries attempts requeue"],
  [["labels"], "tags"],
  [["extraSbatchArgs"], "sbatchargs sbatchoptions extraargs"],
  [["secrets"], "secret"],
  [["setup"], "modules prologue before"],
];
const ALIASES = new Map(OTHER_NAMES.flatMap(([ours, theirs]) => theirs.split(" ").map((name) => [name, ours])));

/** Keys longer than this get no suggestion (and are shortened in messages): nobody typos a page. */
const MAX_KEY = 64;

/** `cpus_per_task`, `CPUS-PER-TASK` and `cpusPerTask` all become `cpuspertask`. */
function normalise(key: string): string {
  return key.toLowerCase().replace(/[-_ ]/g, "");
}

type Def = { type?: string; [k: string]: unknown };
const defOf = (schema: unknown): Def | undefined => (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;

/** Peels optional/default/nullable/pipe wrappers off a schema. */
function unwrap(schema: unknown): unknown {
  let current = schema;
  for (let depth = 0; depth < 16; depth++) {
    const def = defOf(current);
    if (!def) {
      return current;
    }
    if (["optional", "nullable", "default", "prefault", "readonly", "catch", "nonoptional"].includes(def.type ?? "")) {
      current = def.innerType;
    } else if (def.type === "pipe") {
      current = def.in;
    } else if (def.type === "lazy" && typeof def.getter === "function") {
      current = (def.getter as () => unknown)();
    } else {
      return current;
    }
  }
  return current;
}

function shapeOf(schema: unknown): Record<string, unknown> | undefined {
  const def = defOf(unwrap(schema));
  return def?.type === "object" ? (def.shape as Record<string, unknown>) : undefined;
}

/** The object schema at `path` (keys and array indexes) under `root`, when there is one. */
function schemaAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const step of path) {
    const def = defOf(unwrap(current));
    if (def?.type === "object") {
      current = (def.shape as Record<string, unknown>)[String(step)];
    } else if (def?.type === "array") {
      current = def.element;
    } else if (def?.type === "record") {
      current = def.valueType;
    } else {
      return undefined;
    }
    if (current === undefined) {
      return undefined;
    }
  }
  return current;
}

/** Optimal string alignment distance: edits, with a swap of two neighbours counting as one. */
function distance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i || j));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i]!;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
      }
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The field `key` was probably meant to be, as a path relative to its object (`cpusPerTask`,
 * `resources.time`), or undefined when nothing is close.
 * @example suggestField(JobSpec, [], "walltime") === "resources.time"
 * @example suggestField(JobSpec, ["resources"], "cpus") === "cpusPerTask"
 */
export function suggestField(root: unknown, parentPath: readonly PropertyKey[], key: string): string | undefined {
  const shape = shapeOf(schemaAt(root, parentPath));
  if (!shape || key.length > MAX_KEY) {
    return undefined;
  }
  const siblings = Object.keys(shape);
  const nested = siblings.flatMap((outer) =>
    Object.keys(shapeOf(shape[outer]) ?? {}).map((inner) => ({ name: inner, path: `${outer}.${inner}` })),
  );
  const candidates = [...siblings.map((name) => ({ name, path: name })), ...nested];
  const wanted = normalise(key);
  const same = candidates.find((c) => normalise(c.name) === wanted);
  if (same) {
    return same.path;
  }
  for (const alias of ALIASES.get(wanted) ?? []) {
    const hit = candidates.find((c) => c.name === alias);
    if (hit) {
      return hit.path;
    }
  }
  // A shortened or lengthened name (`expiresIn` for `expiresInDays`, `jobId` for `job`).
  const prefix = candidates.find((c) => {
    const name = normalise(c.name);
    return (wanted.length >= 4 && name.startsWith(wanted)) || (name.length >= 3 && wanted.startsWith(name));
  });
  if (prefix) {
    return prefix.path;
  }
  const allowed = wanted.length <= 2 ? 0 : wanted.length <= 5 ? 1 : 2;
  let best: { path: string; d: number } | undefined;
  for (const c of candidates) {
    const d = distance(wanted, normalise(c.name));
    if (d <= allowed && (!best || d < best.d)) {
      best = { path: c.path, d };
    }
  }
  return best?.path;
}

/** A key as shown in a message: long or odd keys are shortened and quoted. */
export function showKey(key: string): string {
  const short = key.length > MAX_KEY ? `${key.slice(0, MAX_KEY)}…` : key;
  return /^[A-Za-z0-9_$-]+$/.test(short) ? short : JSON.stringify(short);
}

/**
 * The message for one refused key, naming its path under the body (or query) and the field meant.
 * @example unknownFieldMessage(JobSpec, ["resources"], "cpus")
 * // => "unknown field resources.cpus; did you mean resources.cpusPerTask?"
 */
export function unknownFieldMessage(
  root: unknown,
  parentPath: readonly PropertyKey[],
  key: string,
  noun = "field",
): string {
  const prefix = parentPath.map((step) => showKey(String(step)));
  const where = [...prefix, showKey(key)].join(".");
  const meant = root === undefined ? undefined : suggestField(root, parentPath, key);
  return meant ? `unknown ${noun} ${where}; did you mean ${[...prefix, meant].join(".")}?` : `unknown ${noun} ${where}`;
}
