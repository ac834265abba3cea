/**
 * Which sweep elements may share one Slurm array: those whose specs are equal except in
 * PER_ELEMENT_FIELDS (the fields the agent reads per array index from a data file), on the same
 * cluster, partition and owner. An element with its own `array`, with dependencies, or with a
 * `script` (a body the agent writes per job, not a per-index argv) is a plain job.
 */
import { type JobSpec, PER_ELEMENT_FIELDS } from "../../schemas/index.ts";
import { canonicalJson, hashJson } from "../tokens.ts";

/** The spec without its per-element fields, as canonical JSON: equal text, same array. */
export function sharedPart(spec: JobSpec): string {
  const rest: Record<string, unknown> = { ...spec };
  for (const field of PER_ELEMENT_FIELDS) {
    delete rest[field];
  }
  return canonicalJson(rest);
}

/** `into` with the per-element fields of `own`: an element's spec on a route computed for its shared part. */
export function withOwnFields(into: JobSpec, own: JobSpec): JobSpec {
  const out: Record<string, unknown> = { ...into };
  for (const field of PER_ELEMENT_FIELDS) {
    if (own[field] === undefined) {
      delete out[field];
    } else {
      out[field] = own[field];
    }
  }
  return out as JobSpec;
}

/** The grouping key stored on the element's row, or null when it must be submitted on its own. */
export async function groupKey(
  spec: JobSpec,
  at: { owner: string; cluster: string; partition: string | null },
): Promise<string | null> {
  // A job naming staged caches goes job by job: only the single-job path checks and renders them.
  if (spec.array || spec.dependsOn.length > 0 || spec.command === undefined || spec.cache?.length) {
    return null;
  }
  const hash = await hashJson({ ...at, spec: sharedPart(spec) });
  return hash.slice(0, 32);
}
