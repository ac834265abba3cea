/**
 * Property: adding any unknown key, with any JSON value, to a valid job spec at any object depth is
 * refused with exactly one error, naming that key's path.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { JobSpec } from "../../schemas/index.ts";
import { createWorld, expectProblemShape } from "./world.ts";

/** A spec with every nested object filled in, valid as it stands. */
function fullSpec(images: boolean): Record<string, unknown> {
  return {
    name: "full",
    cluster: "alpha",
    partition: "gpu",
    resources: { nodes: 1, cpusPerTask: 1, memPerNode: "1G", gpus: { count: 1, type: "a100" }, time: "10m" },
    command: ["python", "train.py"],
    workdir: "runs/a",
    env: { MODE: "x" },
    secrets: ["TOKEN"],
    setup: ["module load cuda"],
    container: {
      ...(images ? { images: { x86_64: "/img/a.sif", aarch64: "/img/b.sif" } } : { image: "/img/a.sif" }),
      binds: [{ src: "/shared/data", dst: "/data", readonly: true }],
      env: { IN: "1" },
    },
    array: { indexes: "0-3", maxParallel: 2 },
    dependsOn: [{ job: "job_00000000000000000000000000", condition: "afterok" }],
    retries: { max: 1, onTimeout: true },
    labels: { project: "p" },
    extraSbatchArgs: ["--constraint=ib"],
  };
}

/** Every object of the spec that is a schema object (not a free-form map like env or labels). */
const OBJECT_PATHS: (string | number)[][] = [
  [],
  ["resources"],
  ["resources", "gpus"],
  ["container"],
  ["container", "binds", 0],
  ["array"],
  ["dependsOn", 0],
  ["retries"],
];

function objectAt(root: Record<string, unknown>, path: (string | number)[]): Record<string, unknown> {
  return path.reduce<Record<string, unknown>>((o, step) => o[step as string] as Record<string, unknown>, root);
}

describe("strict job specs (property)", () => {
  it("every base spec is valid as it stands", () => {
    for (const images of [false, true]) {
      expect(JobSpec.safeParse(fullSpec(images)).success).toBe(true);
    }
  });

  it("refuses any unknown key at any depth with that key's path, and nothing else", async () => {
    const w = await createWorld();
    const paths = [
      ...OBJECT_PATHS.map((p) => ({ path: p, images: false })),
      { path: ["container", "images"], images: true },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.oneof(
          fc.string({ maxLength: 20 }),
          fc.constantFrom("__proto__", "constructor", "toString", "cpus", "walltime"),
        ),
        fc.jsonValue({ maxDepth: 2 }),
        async ({ path, images }, key, value) => {
          const body = fullSpec(images);
          const target = objectAt(body, path);
          fc.pre(!Object.hasOwn(target, key) && !knownKey(path, key, images));
          // defineProperty: a plain assignment of "__proto__" would set the prototype, not a key.
          Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
          const res = await w.call("POST", "/v1/jobs", w.tokens.alice, JSON.stringify(body));
          const problem = expectProblemShape(res, 422) as unknown as { errors: { field: string; message: string }[] };
          expect(problem.errors).toEqual([
            { field: ["body", ...path.map(String), key].join("."), message: expect.stringMatching(/^unknown field /) },
          ]);
        },
      ),
      { numRuns: 150 },
    );
    const rs = await w.db.client.execute("SELECT count(*) AS n FROM jobs");
    expect(Number(rs.rows[0]?.n)).toBe(0);
  });
});

/** Keys the schema knows at that object (some are absent from the base spec but allowed). */
function knownKey(path: (string | number)[], key: string, images: boolean): boolean {
  const probe = fullSpec(images);
  Object.defineProperty(objectAt(probe, path), key, { value: 0, enumerable: true, configurable: true });
  const result = JobSpec.safeParse(JSON.parse(JSON.stringify(probe)));
  return !result.error?.issues.some((i) => i.code === "unrecognized_keys" && i.keys.includes(key));
}
