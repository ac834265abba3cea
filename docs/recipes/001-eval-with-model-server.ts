/**
 * Seed 001 (an evaluation launcher's Slurm executor): deploy a model server for the scope of one
 * evaluation and point the benchmark harness at it, in one allocation. The server is a `services[]`
 * entry in its own container, health-checked before the harness starts and stopped after it; the
 * environment is split per part (deployment vs evaluation), the Hugging Face token goes to the
 * server only, a timeout or preemption resumes as a new attempt, and the scores come back as the
 * job's result.
 *
 * Run: SLURMGATE_URL=… SLURMGATE_TOKEN=… npx tsx docs/recipes/001-eval-with-model-server.ts
 */
import { fileURLToPath } from "node:url";
import { createClient, type SlurmgateClient } from "../../client/index.ts";

export type EvalWithServerOptions = {
  /** The served model: a Hugging Face handle, downloaded by the server unless `checkpoint` is given. */
  model?: string;
  /** A model directory on shared storage to serve instead of downloading `model`. */
  checkpoint?: string;
  tasks?: string[];
  partition?: string;
  account?: string;
  gpusPerNode?: number;
  time?: string;
  servingImage?: string;
  /** The server's argv in its image; the recipe appends the model, its served name and `--port`. */
  serve?: string[];
  harnessImage?: string;
  /** The harness's argv in its image; the recipe appends the tasks, the endpoint and the output file. */
  evaluate?: string[];
  /** How long the server may take to load the model and answer /health. */
  startupSeconds?: number;
};

type FinalJob = Awaited<ReturnType<SlurmgateClient["wait"]>>;

export type EvalWithServerReport = {
  job: FinalJob;
  /** What the harness wrote to $SLURMGATE_RESULT (the scores per task). */
  result: unknown;
  /** The model server's own stdout, shipped as its own stream. */
  serverLog: string;
};

const DEFAULTS = {
  model: "meta-llama/Llama-3.1-8B-Instruct",
  tasks: ["hellaswag", "arc_challenge", "winogrande"],
  partition: "gpu",
  gpusPerNode: 8,
  time: "4h",
  servingImage: "docker://vllm/vllm-openai:v0.6.3",
  serve: ["vllm", "serve"],
  harnessImage: "/shared/images/eval-harness.sif",
  evaluate: ["eval-harness", "run"],
  startupSeconds: 900,
};

export async function run(client: SlurmgateClient, options: EvalWithServerOptions = {}): Promise<EvalWithServerReport> {
  const o = { ...DEFAULTS, ...options };
  const submitted = await client.submit({
    name: "eval-with-server",
    partition: o.partition,
    ...(o.account ? { account: o.account } : {}),
    resources: { gpus: { count: o.gpusPerNode }, time: o.time },
    // The evaluation part: its image, its env; it never sees the server's env or secrets.
    container: { image: o.harnessImage, mountHome: true },
    env: { EVAL_LOG_SAMPLES: "true" },
    // {…}: the server's URL and the result file exist only in the allocation; the wrapper fills them in.
    command: [
      ...o.evaluate,
      "--model",
      o.model,
      "--tasks",
      o.tasks.join(","),
      "--model-url",
      "{SLURMGATE_SERVICE_MODEL_URL}/v1/chat/completions",
      "--output",
      "{SLURMGATE_RESULT}",
    ],
    services: [
      {
        name: "model",
        container: {
          image: o.servingImage,
          command: [
            ...o.serve,
            o.checkpoint ?? o.model,
            "--served-model-name",
            o.model,
            "--port",
            "{SLURMGATE_SERVICE_PORT}",
          ],
        },
        // The deployment part: its own env and the token for gated models, neither seen by the harness.
        env: { VLLM_WORKER_MULTIPROC_METHOD: "spawn" },
        secrets: ["HF_TOKEN"],
        binds: o.checkpoint ? [{ src: o.checkpoint, readonly: true }] : [],
        health: { http: "/health" },
        timeoutSeconds: o.startupSeconds,
      },
    ],
    // The executor's auto-resume: a timeout, preemption or node failure runs again as attempt n + 1.
    retries: { max: 2, onTimeout: true, onPreemption: true, onNodeFail: true },
    labels: { tool: "evaluator", model: o.model },
  });
  const job = await client.wait(submitted.id);
  let serverLog = "";
  for await (const text of client.logs(job.id, { service: "model", follow: true })) {
    serverLog += text;
  }
  return { job, result: job.result ?? null, serverLog };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseUrl = process.env.SLURMGATE_URL;
  if (!baseUrl) {
    console.error("set SLURMGATE_URL (and SLURMGATE_TOKEN) to your gateway and token");
    process.exit(2);
  }
  const client = createClient({ baseUrl, token: process.env.SLURMGATE_TOKEN });
  const { job, result } = await run(client);
  console.log(`${job.id} on ${job.cluster}: ${job.state}${job.code ? ` [${job.code}]` : ""} ${job.reason ?? ""}`);
  console.log(JSON.stringify(result, null, 2));
  process.exitCode = job.state === "completed" ? 0 : 3;
}
