/**
 * What a job naming staged caches (`spec.cache`) gets: `SLURMGATE_CACHE_<NAME>` = the cache's path
 * for each, `HF_HUB_OFFLINE=1` and `TRANSFORMERS_OFFLINE=1` when one is a model (compute nodes of an
 * offline cluster cannot download, so libraries must not try), and in a container a read-only bind
 * of each. The paths were resolved and checked by the agent at lease time (agent/stage.ts).
 */
import { cacheEnvName, cacheRefKind } from "../../schemas/cache.ts";
import type { JobSpec } from "../../schemas/job.ts";
import { ABSOLUTE_PATH } from "../../schemas/patterns.ts";
import { requireMatch } from "./errors.ts";

export type StagedCache = { ref: string; path: string };

/** The variables the caches add; the job's own `env` is applied after them and wins. */
export function cacheEnv(caches: readonly StagedCache[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const c of caches) {
    env[cacheEnvName(c.ref)] = requireMatch(c.path, ABSOLUTE_PATH, `cache.${c.ref}`, "path_outside_roots");
  }
  if (caches.some((c) => cacheRefKind(c.ref) === "model")) {
    env.HF_HUB_OFFLINE = "1";
    env.TRANSFORMERS_OFFLINE = "1";
  }
  return env;
}

/** The spec with a read-only bind per cache added to its container (unchanged without one). */
export function withCacheBinds(spec: JobSpec, caches: readonly StagedCache[]): JobSpec {
  if (!spec.container || caches.length === 0) {
    return spec;
  }
  const binds = caches.map((c) => ({ src: c.path, dst: c.path, readonly: true }));
  return { ...spec, container: { ...spec.container, binds: [...spec.container.binds, ...binds] } };
}
