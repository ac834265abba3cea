/**
 * A lease's spec is validated once per process, however many steps read it: the submit path checks
 * it, and the renderer (or a batch member's preparation), handed the same raw object or the parsed
 * one, gets the same parsed spec back without a second parse. Nothing in the agent writes to a
 * lease's spec, raw or parsed.
 */
import { JobSpec } from "../../schemas/job.ts";

const parsedOf = new WeakMap<object, JobSpec>();

export function parseJobSpec(raw: unknown): ReturnType<typeof JobSpec.safeParse> {
  const known = typeof raw === "object" && raw !== null ? parsedOf.get(raw) : undefined;
  if (known) {
    return { success: true, data: known };
  }
  const parsed = JobSpec.safeParse(raw);
  if (parsed.success) {
    parsedOf.set(parsed.data, parsed.data);
    if (typeof raw === "object" && raw !== null) {
      parsedOf.set(raw, parsed.data);
    }
  }
  return parsed;
}

/** {@link parseJobSpec} for a spec already checked: an invalid one throws, as `JobSpec.parse` does. */
export function checkedJobSpec(raw: unknown): JobSpec {
  const parsed = parseJobSpec(raw);
  if (!parsed.success) {
    throw parsed.error;
  }
  return parsed.data;
}
