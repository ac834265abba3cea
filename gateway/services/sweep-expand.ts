/**
 * A sweep request → its elements as whole JobSpecs, in element order. Pure: no I/O.
 *
 * `specs` are taken as they are. `base` × `points` × `grid`: points outer, grid inner, the grid's
 * last name varying fastest (nested loops in the order the names were given). Each element is the
 * base with the point merged over it (env and labels key by key, command replaced, name default
 * `<base name>-<index>`) and the grid's values set as env variables and labels, and `{NAME}` in
 * argv items replaced by the value (argv never meets a shell, so this is plain text).
 *
 * Only the per-element fields (PER_ELEMENT_FIELDS) can differ from the validated base, so each
 * element is checked against JobSpec's own schemas of exactly those fields (plus JobSpec's
 * command-or-script rule): the same verdict as parsing the whole spec, at a fraction of the cost
 * for 10,000 elements. Each fault is named where the user can fix it: `points.2.env.X`, `grid.LR`,
 * `base.name`, and each distinct fault is listed once.
 */
import { z } from "@hono/zod-openapi";
import {
  type JobSpec,
  JobSpec as JobSpecSchema,
  MAX_SWEEP_ELEMENTS,
  type SweepPoint,
  type SweepRequest,
} from "../../schemas/index.ts";
import type { FieldError } from "../problem.ts";
import { sharedPart } from "./sweep-group.ts";

/**
 * One element: its spec, the path its routing faults are named under (`body.specs.3`, `body.base`)
 * and, for an element made from the base, the base's sharedPart (the same for all of them).
 */
export type SweepElementSpec = { spec: JobSpec; at: string; shared?: string };

export type Expansion = { ok: true; elements: SweepElementSpec[] } | { ok: false; errors: FieldError[] };

const PerElement = z.object({
  name: JobSpecSchema.shape.name,
  env: JobSpecSchema.shape.env,
  command: JobSpecSchema.shape.command,
  labels: JobSpecSchema.shape.labels,
});

const ONE_OF = "give either specs, or base with points and/or grid";

/** How many elements `base` × `points` × `grid` makes, without making them. */
export function expandedCount(request: Pick<SweepRequest, "points" | "grid">): number {
  let count = request.points?.length ?? 1;
  for (const values of Object.values(request.grid ?? {})) {
    count *= values.length;
  }
  return count;
}

export function expandSweep(request: SweepRequest): Expansion {
  const { specs, base, points, grid } = request;
  if (specs) {
    if (base || points || grid) {
      const extra = base ? "base" : points ? "points" : "grid";
      return { ok: false, errors: [{ field: `body.${extra}`, message: `${ONE_OF}, not both` }] };
    }
    return { ok: true, elements: specs.map((spec, i) => ({ spec, at: `body.specs.${i}` })) };
  }
  if (!base) {
    return { ok: false, errors: [{ field: "body.specs", message: ONE_OF }] };
  }
  if (!points && !grid) {
    return { ok: false, errors: [{ field: "body.points", message: "a base needs points and/or grid" }] };
  }
  const count = expandedCount(request);
  if (count > MAX_SWEEP_ELEMENTS) {
    const field = grid ? "body.grid" : "body.points";
    const message = `expands to ${count} elements; a sweep has at most ${MAX_SWEEP_ELEMENTS}`;
    return { ok: false, errors: [{ field, message }] };
  }
  return expandBase(base, points ?? [undefined], grid ?? {});
}

/** Every combination of the grid's values, as text, in nested-loop order. */
function combinations(grid: Record<string, (string | number | boolean)[]>): [string, string][][] {
  let out: [string, string][][] = [[]];
  for (const [name, values] of Object.entries(grid)) {
    const next: [string, string][][] = [];
    for (const prefix of out) {
      for (const value of values) {
        next.push([...prefix, [name, String(value)]]);
      }
    }
    out = next;
  }
  return out;
}

function substitute(argv: string[], combo: [string, string][]): string[] {
  if (combo.length === 0) {
    return argv;
  }
  return argv.map((item) =>
    item.includes("{") ? combo.reduce((text, [name, value]) => text.replaceAll(`{${name}}`, value), item) : item,
  );
}

function expandBase(
  base: JobSpec,
  points: (SweepPoint | undefined)[],
  grid: Record<string, (string | number | boolean)[]>,
): Expansion {
  const combos = combinations(grid);
  const shared = sharedPart(base);
  const elements: SweepElementSpec[] = [];
  const faults = new Map<string, FieldError>();
  let index = 0;
  for (const [p, point] of points.entries()) {
    for (const combo of combos) {
      const gridVars = Object.fromEntries(combo);
      const own = {
        name: point?.name ?? `${base.name}-${index}`,
        env: point?.env || combo.length ? { ...base.env, ...point?.env, ...gridVars } : base.env,
        command: (point?.command ?? base.command) && substitute(point?.command ?? base.command ?? [], combo),
        labels: point?.labels || combo.length ? { ...base.labels, ...point?.labels, ...gridVars } : base.labels,
      };
      const checked = PerElement.safeParse(own);
      if (!checked.success) {
        for (const issue of checked.error.issues) {
          const field = blame(issue.path.map(String), { p, point, grid, base });
          // A refused record key says which pattern it broke, not only that it was refused.
          const inner = issue.code === "invalid_key" ? issue.issues[0]?.message : undefined;
          const message = inner ? `${String(issue.path.at(-1))}: ${inner}` : issue.message;
          faults.set(`${field}\n${message}`, { field, message });
        }
      } else if (own.command && base.script !== undefined) {
        const field = point?.command ? `body.points.${p}.command` : "body.base.command";
        faults.set(field, { field, message: "give exactly one of command (argv) or script" });
      }
      const spec: JobSpec = { ...base, name: own.name, env: own.env, labels: own.labels };
      if (own.command) {
        spec.command = own.command;
      }
      elements.push({ spec, at: "body.base", shared });
      index++;
    }
  }
  return faults.size ? { ok: false, errors: [...faults.values()] } : { ok: true, elements };
}

/** Where a per-element fault comes from: the grid name, the point, or the base. */
function blame(
  path: string[],
  at: { p: number; point: SweepPoint | undefined; grid: Record<string, unknown>; base: JobSpec },
): string {
  const { p, point, grid, base } = at;
  const [field = "", key] = path;
  const fromPoint = `body.points.${p}.${path.join(".")}`;
  const fromBase = `body.base.${path.join(".")}`;
  if (field === "env" || field === "labels") {
    if (key !== undefined && Object.hasOwn(grid, key)) {
      return `body.grid.${key}`;
    }
    if (key !== undefined) {
      return point?.[field] && Object.hasOwn(point[field], key) ? fromPoint : fromBase;
    }
    return point?.[field] ? fromPoint : Object.keys(grid).length ? "body.grid" : fromBase;
  }
  if (field === "command") {
    const item = key === undefined ? undefined : base.command?.[Number(key)];
    return point?.command ? fromPoint : item?.includes("{") && Object.keys(grid).length ? "body.grid" : fromBase;
  }
  return point?.[field as keyof SweepPoint] !== undefined ? fromPoint : fromBase;
}
