/**
 * Every request body is strict: an unknown key is a 422 naming its full path and, when one is close,
 * the field meant; and one answer lists every fault of a body, cross-field rules included.
 */
import { describe, expect, it } from "vitest";
import { JobSpec } from "../../schemas/index.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

type FieldErrors = { field: string; message: string }[];
type Refusal = { code: string; field: string; detail: string; errors: FieldErrors };

async function jobCount(w: Awaited<ReturnType<typeof createWorld>>) {
  const rs = await w.db.client.execute("SELECT count(*) AS n FROM jobs");
  return Number(rs.rows[0]?.n);
}

/** The README's example job, as its docs show it. */
const README_JOB = {
  name: "train-resnet",
  partition: "gpu",
  resources: { gpus: { count: 1, type: "a100" }, cpusPerTask: 1, memPerNode: "2G", time: "1h" },
  setup: ["module load cuda/12.4", "source ~/venvs/train/bin/activate"],
  command: ["python", "train.py", "--epochs", "10"],
  env: { WANDB_MODE: "offline" },
  secrets: ["HF_TOKEN"],
  labels: { project: "vision" },
  retries: { max: 3, onTimeout: true, onPreemption: true, onNodeFail: true },
};

describe("strict request bodies", () => {
  it("refuses an unknown key at every level of a job spec, naming its path and the field meant", async () => {
    const w = await createWorld();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ walltime: "10m" }, "body.walltime", "unknown field walltime; did you mean resources.time?"],
      [{ resources: { cpus: 2 } }, "body.resources.cpus", "did you mean resources.cpusPerTask?"],
      [{ resources: { mem: "4G" } }, "body.resources.mem", "did you mean resources.memPerNode?"],
      [{ resources: { ntasks: 4 } }, "body.resources.ntasks", "did you mean resources.ntasksPerNode?"],
      [{ gres: "gpu:a100:1" }, "body.gres", "did you mean resources.gpus?"],
      [
        { resources: { gpus: { count: 1, typ: "a100" } } },
        "body.resources.gpus.typ",
        "did you mean resources.gpus.type?",
      ],
      [
        { container: { image: "/img.sif", mountHom: false } },
        "body.container.mountHom",
        "did you mean container.mountHome?",
      ],
      [
        { container: { images: { x86_64: "/a.sif", arm64: "/b.sif" } } },
        "body.container.images.arm64",
        "unknown field container.images.arm64",
      ],
      [
        { container: { image: "/img.sif", binds: [{ src: "/shared/data", ro: true }] } },
        "body.container.binds.0.ro",
        "unknown field container.binds.0.ro",
      ],
      [{ array: { indexes: "0-3", max_parallel: 2 } }, "body.array.max_parallel", "did you mean array.maxParallel?"],
      [
        { dependsOn: [{ job: "job_00000000000000000000000000", type: "afterok" }] },
        "body.dependsOn.0.type",
        "unknown field dependsOn.0.type",
      ],
      [{ retries: { maxRetries: 2 } }, "body.retries.maxRetries", "did you mean retries.max?"],
      [{ cpus_per_task: 2 }, "body.cpus_per_task", "did you mean resources.cpusPerTask?"],
      [{ Name: "x" }, "body.Name", "did you mean name?"],
      [
        { dependsOn: [{ job: "job_00000000000000000000000000", jobId: "x" }] } as never,
        "body.dependsOn.0.jobId",
        "did you mean dependsOn.0.job?",
      ],
      [{ zzzz: 1 }, "body.zzzz", "unknown field zzzz"],
    ];
    for (const [extra, field, message] of cases) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, spec(extra));
      const problem = expectProblemShape(res, 422) as unknown as Refusal;
      expect(problem.code).toBe("validation_failed");
      expect(problem.errors, JSON.stringify(extra)).toEqual([{ field, message: expect.stringContaining(message) }]);
      expect(problem.field).toBe(field);
      expect(problem.detail).toBe(problem.errors[0]?.message);
    }
    expect(await jobCount(w)).toBe(0);
  });

  it("lists every fault of a body in one answer: 5 faults, 5 errors, cross-field rules included", async () => {
    const w = await createWorld();
    const body = {
      name: "bad name!",
      command: ["python", "train.py"],
      script: "echo both",
      walltime: "10m",
      resources: { cpusPerTask: "two", memPerNode: "4G", memPerCpu: "1G" },
    };
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, body);
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors).toHaveLength(5);
    expect(new Set(problem.errors.map((e) => e.field))).toEqual(
      new Set(["body.name", "body.command", "body.walltime", "body.resources.cpusPerTask", "body.resources.memPerCpu"]),
    );
    expect(problem.errors.find((e) => e.field === "body.command")?.message).toMatch(/exactly one of command/);
    expect(problem.errors.find((e) => e.field === "body.resources.memPerCpu")?.message).toMatch(/not both/);
    expect(problem.detail).toMatch(/^5 problems: \(1\) .* \(5\) /);
    expect(await jobCount(w)).toBe(0);
  });

  it("checks the checkpoint signal's fields all at once, and never lets --signal in through extraSbatchArgs", async () => {
    const w = await createWorld();
    const res = await w.call(
      "POST",
      "/v1/jobs",
      w.tokens.alice,
      spec({
        checkpoint: { signal: "KILL", secondsBeforeLimit: 70_000, seconds: 5 },
        extraSbatchArgs: ["--signal=B:USR1@60"],
      } as never),
    );
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors.map((e) => e.field).sort()).toEqual([
      "body.checkpoint.seconds",
      "body.checkpoint.secondsBeforeLimit",
      "body.checkpoint.signal",
      "body.extraSbatchArgs.0",
    ]);
    expect(problem.errors.find((e) => e.field === "body.extraSbatchArgs.0")?.message).toMatch(
      /--signal is set by slurmgate itself/,
    );
    expect(await jobCount(w)).toBe(0);
    const ok = await w.call("POST", "/v1/jobs", w.tokens.alice, spec({ checkpoint: { secondsBeforeLimit: 90 } }));
    expect(ok.status).toBe(201);
    expect((ok.body as { spec: { checkpoint: unknown } }).spec.checkpoint).toEqual({
      signal: "USR1",
      secondsBeforeLimit: 90,
    });
  });

  it("runs image-vs-images alongside a type error in the same container", async () => {
    const w = await createWorld();
    const res = await w.call(
      "POST",
      "/v1/jobs",
      w.tokens.alice,
      spec({ container: { image: "/a.sif", images: { x86_64: "/b.sif" }, gpu: "yes" } as never }),
    );
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors.map((e) => e.field).sort()).toEqual(["body.container.gpu", "body.container.image"]);
  });

  it("takes the README example with a new user's mistakes in one round trip, then accepts the fixed job", async () => {
    const w = await createWorld();
    // What people carry over from sbatch scripts and other schedulers.
    const mistaken = {
      ...README_JOB,
      walltime: "4h",
      resources: { gpus: { count: 1, type: "a100" }, cpus: 8, mem: "32G" },
      command: "python train.py --epochs 10",
      retries: { max: 3, onTimeout: true, on_preemption: true },
    };
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, mistaken);
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    const byField = [...problem.errors].sort((a, b) => a.field.localeCompare(b.field));
    expect(byField).toEqual([
      { field: "body.command", message: "Invalid input: expected array, received string" },
      { field: "body.resources.cpus", message: "unknown field resources.cpus; did you mean resources.cpusPerTask?" },
      { field: "body.resources.mem", message: "unknown field resources.mem; did you mean resources.memPerNode?" },
      {
        field: "body.retries.on_preemption",
        message: "unknown field retries.on_preemption; did you mean retries.onPreemption?",
      },
      { field: "body.walltime", message: "unknown field walltime; did you mean resources.time?" },
    ]);
    const fixed = await w.call("POST", "/v1/jobs", w.tokens.alice, README_JOB);
    expect(fixed.status).toBe(201);
  });

  it("refuses unknown keys in admin and agent bodies too", async () => {
    const w = await createWorld();
    const { admin, alphaAgent } = w.tokens;
    const cases: [string, string, string, Record<string, unknown>, string, string][] = [
      ["POST", "/v1/admin/users", admin, { name: "carol", isAdmin: true }, "body.isAdmin", "did you mean admin?"],
      [
        "POST",
        "/v1/admin/tokens",
        admin,
        { kind: "user", user: "alice", expiresIn: 3 },
        "body.expiresIn",
        "did you mean expiresInDays?",
      ],
      [
        "POST",
        "/v1/admin/clusters",
        admin,
        { name: "gamma", sharedRoots: ["/shared"], profiles: { big: { resources: { cpus: 2 } } } },
        "body.profiles.big.resources.cpus",
        "unknown field profiles.big.resources.cpus; did you mean profiles.big.resources.cpusPerTask?",
      ],
      [
        "POST",
        "/v1/admin/grants",
        admin,
        { user: "alice", cluster: "alpha", partition: ["cpu"] },
        "body.partition",
        "did you mean partitions?",
      ],
      [
        "POST",
        "/v1/agent/lease",
        alphaAgent,
        { agentId: "a1", max: 1, wait: 0, holdings: [] },
        "body.holdings",
        "did you mean holding?",
      ],
      [
        "POST",
        "/v1/agent/reports",
        alphaAgent,
        {
          reports: [
            {
              jobId: "job_00000000000000000000000000",
              epoch: 1,
              logs: [{ stream: "stdout", offset: 0, data: "", x: 1 }],
            },
          ],
        },
        "body.reports.0.logs.0.x",
        "unknown field reports.0.logs.0.x",
      ],
      [
        "POST",
        "/v1/agent/reports",
        alphaAgent,
        {
          reports: [
            {
              jobId: "job_00000000000000000000000000",
              epoch: 1,
              requeue: { reason: "full", retryAfterSeconds: 5, retryAfter: 5 },
            },
          ],
        },
        "body.reports.0.requeue.retryAfter",
        "did you mean reports.0.requeue.retryAfterSeconds?",
      ],
    ];
    for (const [method, path, token, body, field, message] of cases) {
      const res = await w.call(method, path, token, body);
      const problem = expectProblemShape(res, 422) as unknown as Refusal;
      expect(problem.errors, path).toEqual([{ field, message: expect.stringContaining(message) }]);
    }
    const inventory = {
      slurmVersion: "22.05.8",
      apptainerVersion: null,
      accounting: true,
      agentVersion: "0.1.0",
      agentId: "a1",
      partitions: [
        {
          name: "cpu",
          default: true,
          state: "up",
          nodes: 1,
          maxTimeSeconds: null,
          maxCpusPerNode: 2,
          maxMemMBPerNode: 4000,
          maxNodes: null,
          gpus: [{ type: "a100", count: 1, memory: "80G" }],
        },
      ],
    };
    const res = await w.call("PUT", "/v1/agent/inventory", alphaAgent, inventory);
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors).toEqual([
      { field: "body.partitions.0.gpus.0.memory", message: "unknown field partitions.0.gpus.0.memory" },
    ]);
  });

  it("runs an admin body's cross-field rule alongside an unknown key", async () => {
    const w = await createWorld();
    const res = await w.call("POST", "/v1/admin/tokens", w.tokens.admin, { kind: "agent", clustr: "alpha" });
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors.map((e) => e.field).sort()).toEqual(["body.cluster", "body.clustr"]);
    expect(problem.errors.find((e) => e.field === "body.clustr")?.message).toMatch(/did you mean cluster\?/);
  });

  it("refuses unknown query parameters on list routes, with the parameter meant", async () => {
    const w = await createWorld();
    const jobs = await w.call("GET", "/v1/jobs?stat=running&limit=5", w.tokens.alice);
    expect((expectProblemShape(jobs, 422) as unknown as Refusal).errors).toEqual([
      { field: "query.stat", message: "unknown query parameter stat; did you mean state?" },
    ]);
    for (const [path, token, field] of [
      ["/v1/clusters?page=2", w.tokens.alice, "query.page"],
      ["/v1/admin/users?limit=5", w.tokens.admin, "query.limit"],
      ["/v1/admin/clusters?name=alpha", w.tokens.admin, "query.name"],
      ["/v1/admin/tokens?usr=alice", w.tokens.admin, "query.usr"],
      ["/v1/admin/grants?cluster=alpha", w.tokens.admin, "query.cluster"],
    ] as const) {
      const res = await w.call("GET", path, token);
      expect(expectProblemShape(res, 422).field, path).toBe(field);
    }
    const events = await w.call("GET", "/v1/jobs/job_00000000000000000000000000/events?afterr=1", w.tokens.alice);
    expect(expectProblemShape(events, 422).field).toBe("query.afterr");
    // Known parameters still work.
    expect((await w.call("GET", "/v1/jobs?state=running&limit=5", w.tokens.alice)).status).toBe(200);
    expect((await w.call("GET", "/v1/clusters", w.tokens.alice)).status).toBe(200);
  });

  it("names hostile keys safely: __proto__, constructor, huge and odd keys are plain unknown fields", async () => {
    const w = await createWorld();
    const huge = "k".repeat(100_000);
    const raw = `{"name":"x","command":["a"],"__proto__":{"admin":true},"constructor":1,"toString":2,"${huge}":3,"a\\nb.c":4,"resources":{"__proto__":{"cpusPerTask":64}}}`;
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, raw);
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors.map((e) => e.field)).toEqual([
      "body.resources.__proto__",
      "body.__proto__",
      "body.constructor",
      "body.toString",
      `body.${huge}`,
      "body.a\nb.c",
    ]);
    for (const e of problem.errors) {
      expect(e.message).toMatch(/^unknown field /);
      expect(e.message.length).toBeLessThan(200);
      expect(e.message).not.toContain("\n");
    }
    expect(await jobCount(w)).toBe(0);
  });

  it("caps the list at 100 faults and says how many more there were", async () => {
    const w = await createWorld();
    const extra = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`junk${i}`, i]));
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, { ...spec(), ...extra });
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors).toHaveLength(100);
    expect(problem.detail).toMatch(/^150 problems: .*; and 50 more not listed$/);
  });

  it("answers a body of 25,000 unknown near-miss keys quickly, counting them all", async () => {
    const w = await createWorld();
    // 60-character keys close to each other: the costliest input for the edit-distance suggestion.
    const extra = Object.fromEntries(
      Array.from({ length: 25_000 }, (_, i) => [`extraSbatchArgs${String(i).padStart(45, "x")}`, 0]),
    );
    const started = performance.now();
    const res = await w.call("POST", "/v1/jobs", w.tokens.alice, { ...spec(), ...extra });
    const elapsed = performance.now() - started;
    const problem = expectProblemShape(res, 422) as unknown as Refusal;
    expect(problem.errors).toHaveLength(100);
    expect(problem.detail).toMatch(/^25000 problems: .*; and 24900 more not listed$/);
    expect(elapsed).toBeLessThan(10_000);
  });

  it("stored specs and leases still parse under the strict schema", async () => {
    const w = await createWorld();
    const created = await w.submit(w.tokens.alice, README_JOB as never);
    const leased = await w.call<{ leases: { jobId: string; spec: unknown }[] }>(
      "POST",
      "/v1/agent/lease",
      w.tokens.alphaAgent,
      { agentId: "agent-1", max: 10, wait: 0 },
    );
    expect(leased.status).toBe(200);
    const lease = leased.body.leases.find((l) => l.jobId === created.id);
    expect(lease).toBeDefined();
    // The agent re-validates exactly this: no key the schema does not know.
    expect(JobSpec.safeParse(lease?.spec).success).toBe(true);
    const job = await w.call<{ spec: unknown }>("GET", `/v1/jobs/${created.id}`, w.tokens.alice);
    expect(JobSpec.safeParse(job.body.spec).success).toBe(true);
  });
});

describe("the OpenAPI document", () => {
  it("shows additionalProperties: false on every object of every request body", async () => {
    const w = await createWorld();
    const doc = (await w.call<OpenApi>("GET", "/openapi.json", undefined)).body;
    const loose: string[] = [];
    const seen = new Set<string>();
    const visit = (schema: Schema | undefined, where: string) => {
      if (!schema) {
        return;
      }
      if (schema.$ref) {
        const name = schema.$ref.split("/").pop() ?? "";
        if (!seen.has(name)) {
          seen.add(name);
          visit(doc.components.schemas[name], name);
        }
        return;
      }
      if (schema.type === "object" && schema.properties && schema.additionalProperties !== false) {
        loose.push(where);
      }
      for (const [key, child] of Object.entries(schema.properties ?? {})) {
        visit(child, `${where}.${key}`);
      }
      visit(schema.items, `${where}[]`);
      if (typeof schema.additionalProperties === "object") {
        visit(schema.additionalProperties, `${where}{}`);
      }
      for (const option of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) {
        visit(option, where);
      }
    };
    let bodies = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const body = op.requestBody?.content?.["application/json"]?.schema;
        if (body) {
          bodies++;
          visit(body, `${method.toUpperCase()} ${path}`);
        }
      }
    }
    expect(bodies).toBeGreaterThanOrEqual(7);
    expect(loose).toEqual([]);
  });
});

type Schema = {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: boolean | Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};
type OpenApi = {
  paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
  components: { schemas: Record<string, Schema> };
};
