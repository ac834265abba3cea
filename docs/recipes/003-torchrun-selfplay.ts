/**
 * Seed 003 (RingRift's Slurm backend): `run_training` on several nodes with `torchrun`, from the
 * repository on the shared filesystem, with the venv activated first. The backend's wrapper script
 * (activate, cd, python … with explicit args) becomes `setup` + `workdir` + `launcher: torchrun` +
 * an argv; head-node discovery, MASTER_ADDR/MASTER_PORT and the per-node `--node_rank` are the
 * agent's. Then status from `wait`, logs from the API instead of `data/slurm/logs/<id>.out`.
 *
 *   SLURMGATE_URL=… SLURMGATE_TOKEN=… node docs/recipes/003-torchrun-selfplay.ts
 */
import { fileURLToPath } from "node:url";
import { type SlurmgateClient, createClient } from "../../client/index.ts";

export interface TorchrunTrainingOptions {
  cluster?: string;
  /** `partition_training`. */
  partition?: string;
  nodes: number;
  /** GPUs per node (`gpus_training`); also torchrun's processes per node. */
  gpusPerNode?: number;
  nprocPerNode?: number;
  time?: string;
  /** The repository checkout under the shared root (`ai-service`), relative to it. */
  workdir?: string;
  /** `source …/venv/bin/activate`; on the test clusters, PATH to a stand-in `torchrun`. */
  setup?: string[];
  /** The canonical script and its explicit args, e.g. scripts/run_nn_training_baseline.py --board square8. */
  script: string[];
}

export interface TorchrunTrainingResult {
  jobId: string;
  state: string;
  exitCode: number | null;
  reason: string | null;
  stdout: string;
}

/** Submits one multi-node training run, waits for it, and returns how it ended with its log. */
export async function run(client: SlurmgateClient, options: TorchrunTrainingOptions): Promise<TorchrunTrainingResult> {
  const job = await client.submit({
    name: "ringrift-training",
    ...(options.cluster ? { cluster: options.cluster } : {}),
    ...(options.partition ? { partition: options.partition } : {}),
    ...(options.workdir ? { workdir: options.workdir } : {}),
    resources: {
      nodes: options.nodes,
      time: options.time ?? "8h",
      ...(options.gpusPerNode ? { gpus: { count: options.gpusPerNode } } : {}),
    },
    setup: options.setup ?? [],
    launcher: {
      kind: "torchrun",
      ...((options.nprocPerNode ?? options.gpusPerNode)
        ? { nprocPerNode: options.nprocPerNode ?? options.gpusPerNode }
        : {}),
    },
    command: options.script,
    labels: { tool: "ringrift", work: "training" },
  });
  const done = await client.wait(job.id);
  let stdout = "";
  for await (const text of client.logs(job.id)) {
    stdout += text;
  }
  return { jobId: job.id, state: done.state, exitCode: done.exitCode, reason: done.reason, stdout };
}

if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  const client = createClient({ baseUrl: process.env.SLURMGATE_URL ?? "", token: process.env.SLURMGATE_TOKEN });
  const r = await run(client, {
    partition: "gpu-train",
    nodes: 2,
    gpusPerNode: 4,
    workdir: "ringrift/ai-service",
    setup: ["source /shared/ringrift/ai-service/venv/bin/activate"],
    script: [
      "python",
      "scripts/run_nn_training_baseline.py",
      "--run-dir",
      "runs/sq8_2p",
      "--board",
      "square8",
      "--num-players",
      "2",
      "--epochs",
      "100",
    ],
  });
  console.log(r.jobId, r.state, r.exitCode ?? "", r.reason ?? "");
  process.stdout.write(r.stdout);
}
