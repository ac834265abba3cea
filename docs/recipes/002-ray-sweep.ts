/**
 * Seed 002 (TMGG's SlurmRunner): experiments on a multi-node Ray cluster, one Slurm job per
 * configuration of a sweep, each started with `ray symmetric-run` across its nodes, the result
 * parsed from the `TMGG_RESULT:` line. With slurmgate the hand-written sbatch script (head-node
 * discovery, `srun … ray symmetric-run --address … -- python …`) is `launcher: { kind: "ray" }`;
 * the configuration travels as an env value, never as shell text, and the result comes back both
 * as the job's `result` and from its log.
 *
 *   SLURMGATE_URL=… SLURMGATE_TOKEN=… node docs/recipes/002-ray-sweep.ts
 */
import { fileURLToPath } from "node:url";
import { type SlurmgateClient, createClient } from "../../client/index.ts";

export interface RaySweepOptions {
  /** One experiment per configuration (Hydra overrides in TMGG); each becomes its own job. */
  configs: Record<string, unknown>[];
  cluster?: string;
  partition?: string;
  /** `slurm_nodes`: nodes per experiment, all of them in one Ray cluster. */
  nodes: number;
  cpusPerTask?: number;
  time?: string;
  /** `slurm_setup_commands` (module load, conda activate); on the test clusters, PATH to a stand-in `ray`. */
  setup?: string[];
  /**
   * The experiment: reads its configuration from $TMGG_CONFIG, prints `TMGG_RESULT:{…}` and writes
   * the same JSON to $SLURMGATE_RESULT. It runs on the head node once the Ray cluster is up.
   */
  entrypoint: string[];
}

export interface RaySweepResult {
  config: Record<string, unknown>;
  jobId: string;
  state: string;
  /** From `$SLURMGATE_RESULT`, else the `TMGG_RESULT:` line of the log; null when neither is there. */
  result: unknown;
}

/** Submits the sweep (all at once: Slurm places them), waits for every experiment, returns their results. */
export async function run(client: SlurmgateClient, options: RaySweepOptions): Promise<RaySweepResult[]> {
  const jobs = await Promise.all(
    options.configs.map((config, i) =>
      client.submit({
        name: `tmgg-experiment-${i}`,
        ...(options.cluster ? { cluster: options.cluster } : {}),
        ...(options.partition ? { partition: options.partition } : {}),
        resources: {
          nodes: options.nodes,
          ...(options.cpusPerTask ? { cpusPerTask: options.cpusPerTask } : {}),
          time: options.time ?? "1h",
        },
        setup: options.setup ?? [],
        env: { TMGG_CONFIG: JSON.stringify(config) },
        launcher: { kind: "ray", ...(options.cpusPerTask ? { numCpus: options.cpusPerTask } : {}) },
        command: options.entrypoint,
        labels: { tool: "tmgg", sweep: "ray" },
      }),
    ),
  );
  return Promise.all(
    jobs.map(async (job, i) => {
      const done = await client.wait(job.id);
      let result = done.result ?? null;
      if (result === null) {
        let log = "";
        for await (const text of client.logs(job.id)) {
          log += text;
        }
        const line = /^TMGG_RESULT:(.*)$/m.exec(log)?.[1];
        result = line ? JSON.parse(line) : null;
      }
      return { config: options.configs[i] ?? {}, jobId: job.id, state: done.state, result };
    }),
  );
}

if (import.meta.main ?? process.argv[1] === fileURLToPath(import.meta.url)) {
  const client = createClient({ baseUrl: process.env.SLURMGATE_URL ?? "", token: process.env.SLURMGATE_TOKEN });
  const results = await run(client, {
    configs: [{ lr: 1e-3 }, { lr: 1e-4 }],
    nodes: 2,
    cpusPerTask: 8,
    time: "4h",
    setup: ["module load anaconda3", "conda activate tmgg"],
    entrypoint: ["python", "-u", "-m", "tmgg.experiment_utils.run_from_env"],
  });
  for (const r of results) {
    console.log(r.jobId, r.state, JSON.stringify(r.config), JSON.stringify(r.result));
  }
}
