/**
 * Seed 000 (an LLM energy-measurement tool that deferred HPC support): measure every backend on an
 * offline cluster. The model was staged beforehand on the login node
 * (`slurmgate agent stage ~/hf/llama-3.1-8b llama-3.1-8b`), each backend has its own Apptainer image
 * on shared storage (the tool's `runners:` map), and one sweep runs backend × batch size with the
 * scheduler handing out the GPUs; the results come back per element and are aggregated here.
 *
 * Run: SLURMGATE_URL=… SLURMGATE_TOKEN=… npx tsx docs/recipes/000-offline-eval.ts
 */
import { fileURLToPath } from "node:url";
import { cacheEnvName, createClient, type SlurmgateClient } from "../../client/index.ts";

export type OfflineEvalOptions = {
  /** The staged model, as `slurmgate agent stage --list` names it. */
  model?: string;
  /** One image per backend, on shared storage: the tool's `runners:` map. */
  images?: Record<string, string>;
  batchSizes?: number[];
  /** The measuring tool's argv; the recipe appends backend, batch size, model path and output file. */
  measure?: string[];
  partition?: string;
  gpus?: number;
  time?: string;
  /** Most elements measuring at once (each holds its GPUs). */
  maxParallel?: number;
};

export type Measurement = {
  backend: string;
  batchSize: number;
  jobId: string;
  cluster: string | null;
  state: string;
  reason: string | null;
  result: Record<string, unknown> | null;
};

export type OfflineEvalReport = {
  sweepId: string | null;
  measurements: Measurement[];
  /** Per backend: elements that completed and the mean of every numeric field of their results. */
  byBackend: Record<string, { completed: number; of: number; means: Record<string, number> }>;
};

const DEFAULTS = {
  model: "models/llama-3.1-8b",
  images: {
    pytorch: "/shared/images/llenergymeasure-pytorch.sif",
    vllm: "/shared/images/llenergymeasure-vllm.sif",
    tensorrt: "/shared/images/llenergymeasure-tensorrt.sif",
  },
  batchSizes: [1, 8, 32],
  measure: ["llem", "run"],
  partition: "gpu",
  gpus: 1,
  time: "1h",
  maxParallel: 4,
} satisfies Required<OfflineEvalOptions>;

export async function run(client: SlurmgateClient, options: OfflineEvalOptions = {}): Promise<OfflineEvalReport> {
  const o = { ...DEFAULTS, ...options };
  const backends = Object.keys(o.images);
  const specs = backends.flatMap((backend) =>
    o.batchSizes.map((batchSize) => ({
      name: `llem-${backend}-bs${batchSize}`,
      partition: o.partition,
      resources: { gpus: { count: o.gpus }, time: o.time },
      // Routing sends every element to a cluster whose agent has the model staged; the job gets
      // HF_HUB_OFFLINE=1 and, in its container, a read-only bind of the model.
      cache: [o.model],
      container: { image: o.images[backend as keyof typeof o.images] },
      // {…}: values only the allocation knows (the staged model's path, the result file), filled in
      // by the wrapper as literal argv (README, "References in argv").
      command: [
        ...o.measure,
        "--backend",
        backend,
        "--batch-size",
        String(batchSize),
        "--model",
        `{${cacheEnvName(o.model)}}`,
        "--output",
        "{SLURMGATE_RESULT}",
      ],
      labels: { tool: "llenergymeasure", backend, batch: String(batchSize) },
    })),
  );
  const jobs = await client.sweep(specs, { name: "llem-offline", maxParallel: o.maxParallel, wait: true });
  const measurements = jobs.map((job, i) => ({
    backend: backends[Math.floor(i / o.batchSizes.length)]!,
    batchSize: o.batchSizes[i % o.batchSizes.length]!,
    jobId: job.id,
    cluster: job.cluster ?? null,
    state: job.state,
    reason: job.reason ?? null,
    result: isRecord(job.result) ? job.result : null,
  }));
  const byBackend: OfflineEvalReport["byBackend"] = {};
  for (const backend of backends) {
    const mine = measurements.filter((m) => m.backend === backend);
    const done = mine.filter((m) => m.state === "completed" && m.result);
    const sums: Record<string, number> = {};
    for (const m of done) {
      for (const [key, value] of Object.entries(m.result!)) {
        if (typeof value === "number") {
          sums[key] = (sums[key] ?? 0) + value;
        }
      }
    }
    const means = Object.fromEntries(Object.entries(sums).map(([key, sum]) => [key, sum / done.length]));
    byBackend[backend] = { completed: done.length, of: mine.length, means };
  }
  return { sweepId: jobs.sweepId, measurements, byBackend };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseUrl = process.env.SLURMGATE_URL;
  if (!baseUrl) {
    console.error("set SLURMGATE_URL (and SLURMGATE_TOKEN) to your gateway and token");
    process.exit(2);
  }
  const client = createClient({ baseUrl, token: process.env.SLURMGATE_TOKEN });
  const report = await run(client);
  console.log(`sweep ${report.sweepId}`);
  for (const m of report.measurements) {
    console.log(`${m.backend} bs=${m.batchSize} ${m.state} ${m.reason ?? ""} ${JSON.stringify(m.result)}`);
  }
  for (const [backend, { completed, of, means }] of Object.entries(report.byBackend)) {
    console.log(`${backend}: ${completed}/${of} completed, means ${JSON.stringify(means)}`);
  }
  process.exitCode = report.measurements.every((m) => m.state === "completed") ? 0 : 3;
}
