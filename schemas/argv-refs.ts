/**
 * References in argv: an element of a payload's or a service's `command` may contain
 * `{SLURMGATE_NAME}` where NAME is one of slurmgate's own run-time variables, and the wrapper
 * replaces it with the value it set itself (plain string replacement, one pass, never a shell).
 * Braces around a `SLURMGATE_` name cannot clash with ordinary argv: no program reads that as its
 * own syntax, and user env may not define `SLURMGATE_` names (RESERVED_ENV). The allow-list lives
 * here only; the gateway validates against it and the wrapper expands only what the agent lists.
 */
import { cacheEnvName } from "./cache.ts";

/** One reference; anything of this shape in argv must name an allowed variable. */
export const ARGV_REF = /\{(SLURMGATE_[A-Za-z0-9_]*)\}/g;

/** Variables every job has (template.ts sets them before the payload starts). */
export const JOB_ARGV_REFS = [
  "SLURMGATE_JOB_ID",
  "SLURMGATE_JOB_DIR",
  "SLURMGATE_ATTEMPT",
  "SLURMGATE_RESULT",
  "SLURMGATE_CHECKPOINT_DIR",
] as const;

/** The variables a service is reached through: `api` → SLURMGATE_SERVICE_API_URL/_HOST/_PORT. */
export function serviceRefNames(service: string): string[] {
  const up = `SLURMGATE_SERVICE_${service.toUpperCase().replace(/-/g, "_")}`;
  return [`${up}_URL`, `${up}_HOST`, `${up}_PORT`];
}

/** A service's own port, in its own command (services start before the payload's variables exist). */
export const SERVICE_OWN_PORT_REF = "SLURMGATE_SERVICE_PORT";

/** What a job's declarations allow in its payload's argv, and in a service's argv. */
export function allowedArgvRefs(spec: {
  cache?: readonly string[] | undefined;
  services?: readonly { name: string }[] | undefined;
}): { payload: Set<string>; service: Set<string> } {
  const caches = (spec.cache ?? []).map(cacheEnvName);
  const base = [...JOB_ARGV_REFS, ...caches];
  return {
    payload: new Set([...JOB_ARGV_REFS, ...caches, ...(spec.services ?? []).flatMap((s) => serviceRefNames(s.name))]),
    service: new Set([...base, SERVICE_OWN_PORT_REF]),
  };
}

/** Why an argv element's references are refused, or null when all are allowed. */
export function argvRefProblem(arg: string, allowed: ReadonlySet<string>): string | null {
  for (const m of arg.matchAll(ARGV_REF)) {
    const name = m[1] ?? "";
    if (!allowed.has(name)) {
      const hint = name.startsWith("SLURMGATE_CACHE_")
        ? "a cache the job does not name in `cache`"
        : name.startsWith("SLURMGATE_SERVICE_")
          ? "a service the job does not declare (a service's own port is {SLURMGATE_SERVICE_PORT})"
          : `not one of slurmgate's run-time variables (${JOB_ARGV_REFS.join(", ")}, caches, services)`;
      return `{${name}} is ${hint}`;
    }
  }
  return null;
}

/**
 * Expands references with the given values, in one left-to-right pass (a value is never re-read);
 * the wrapper does the same in bash, and this is its reference for tests and for the agent.
 * @example expandArgvRefs("--out={SLURMGATE_RESULT}", { SLURMGATE_RESULT: "/j/result.json" }) // => "--out=/j/result.json"
 */
export function expandArgvRefs(arg: string, values: Readonly<Record<string, string>>): string {
  return arg.replace(ARGV_REF, (whole, name: string) => values[name] ?? whole);
}
