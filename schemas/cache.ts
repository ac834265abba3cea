/**
 * Staged caches (offline clusters): model directories and Apptainer images placed under an agent's
 * cache root from the login node, reported in its inventory and named by jobs as `<kind>s/<name>`.
 * The names, the kinds and the limits live here only; the agent, the gateway and the CLI derive from them.
 */
import { z } from "@hono/zod-openapi";

/** What may be staged: a model directory or a `.sif` image file. */
export const CACHE_KINDS = ["model", "image"] as const;
export type CacheKind = (typeof CACHE_KINDS)[number];
/** The directory of each kind under the cache root, which is also the first segment of a reference. */
export const CACHE_KIND_DIR: Record<CacheKind, string> = { model: "models", image: "images" };

/** A staged name: one or two lowercase segments, each starting with a letter or digit (so never `.` or `..`). */
export const CACHE_NAME = /^(?=.{1,128}$)[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)?$/;
/** What a job names: the kind's directory, then the staged name, e.g. `models/llama-3.1-8b`. */
export const CACHE_REF = /^(?=.{1,136}$)(models|images)\/[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)?$/;
/** Most caches one job may name. */
export const MAX_JOB_CACHES = 16;
/** Most caches an agent reports in its inventory. */
export const MAX_INVENTORY_CACHES = 1_000;

/** The variable a job reads a cache's path from: `models/llama-3.1-8b` → `SLURMGATE_CACHE_MODELS_LLAMA_3_1_8B`. */
export function cacheEnvName(ref: string): string {
  return `SLURMGATE_CACHE_${ref.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/** The kind a reference names. */
export function cacheRefKind(ref: string): CacheKind {
  return ref.startsWith("images/") ? "image" : "model";
}

export const CacheRefs = z
  .array(z.string().regex(CACHE_REF, "a staged cache such as models/llama-3.1-8b or images/vllm"))
  .max(MAX_JOB_CACHES)
  .superRefine((refs, ctx) => {
    const seen = new Map<string, string>();
    refs.forEach((ref, index) => {
      const name = cacheEnvName(ref);
      const other = seen.get(name);
      if (other !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [index],
          message: `${ref} and ${other} would both be ${name}; name each cache once`,
        });
      }
      seen.set(name, ref);
    });
  })
  .openapi({
    description:
      "Staged caches the job needs (`slurmgate agent stage`). Routing sends it only to clusters whose agent reports all of them; the job gets SLURMGATE_CACHE_<NAME> per cache, HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 with a model, and read-only binds in a container.",
    example: ["models/llama-3.1-8b"],
  });

export const CacheEntry = z
  .strictObject({
    name: z.string().regex(CACHE_REF, "a staged cache reference"),
    bytes: z.number().int().min(0),
    stagedAt: z.string().max(40),
  })
  .openapi("CacheEntry");
export type CacheEntry = z.infer<typeof CacheEntry>;
