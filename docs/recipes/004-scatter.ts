/**
 * Seed 004 (a WDL engine's Slurm + Apptainer backend): a scatter over samples with a concurrency
 * factor, so it cannot flood the partition. It is one sweep over a grid of samples with
 * `maxParallel`, which Slurm enforces as the array's `%N` throttle. Each shard runs its setup lines
 * (load modules, localise its input) and then the task in its container; a shard that fails is
 * named by its cause (`setup_failed`: which line, its exit code and the tail of its stderr), not by
 * "failed (exit 1)" and a directory to dig through.
 *
 * Run: SLURMGATE_URL=… SLURMGATE_TOKEN=… npx tsx docs/recipes/004-scatter.ts
 */
import { fileURLToPath } from "node:url";
import { createClient, type SlurmgateClient } from "../../client/index.ts";

export type ScatterOptions = {
  samples?: string[];
  /** The scatter concurrency factor: most shards running at once. */
  concurrency?: number;
  /** The partition for this task class (default / short / gpu / fpga in the engine's config). */
  partition?: string;
  image?: string;
  /** Where the inputs are on shared storage; each shard copies `<inputs>/<sample>.bam` in. */
  inputs?: string;
  /** Lines before the task, such as `module load`. */
  setup?: string[];
  /** The task's argv; `{SAMPLE}` is replaced by the shard's sample (argv never meets a shell). */
  task?: string[];
  time?: string;
};

export type Shard = {
  sample: string;
  jobId: string;
  state: string;
  /** Why it did not complete, as a code to branch on (`setup_failed`, `image_missing`, `out_of_memory`, …). */
  code: string | null;
  reason: string | null;
  exitCode: number | null;
  /** The task's stdout. */
  output: string;
};

const DEFAULTS = {
  samples: ["NA12878", "NA12891", "NA12892"],
  concurrency: 4,
  partition: "short",
  image: "docker://quay.io/biocontainers/samtools:1.21--h50ea8bc_0",
  inputs: "/shared/wdl/inputs",
  setup: ["module load apptainer/1.3.6"],
  task: ["samtools", "flagstat", "{SAMPLE}.bam"],
  time: "10m",
};

export async function run(client: SlurmgateClient, options: ScatterOptions = {}): Promise<Shard[]> {
  const o = { ...DEFAULTS, ...options };
  const jobs = await client.sweep(
    {
      base: {
        name: "flagstat",
        partition: o.partition,
        resources: { cpusPerTask: 1, memPerNode: "1G", time: o.time },
        container: { image: o.image },
        env: { INPUTS: o.inputs },
        // Localising the input is the last setup line: a missing input fails there, by name.
        setup: [...o.setup, 'cp "$INPUTS/$SAMPLE.bam" "$SLURMGATE_JOB_DIR/"'],
        command: o.task,
      },
      grid: { SAMPLE: o.samples },
    },
    { name: "flagstat-scatter", maxParallel: o.concurrency, wait: true },
  );
  return Promise.all(
    jobs.map(async (job, i) => {
      let output = "";
      for await (const text of client.logs(job.id)) {
        output += text;
      }
      return {
        sample: o.samples[i]!,
        jobId: job.id,
        state: job.state,
        code: job.code ?? null,
        reason: job.reason ?? null,
        exitCode: job.exitCode ?? null,
        output,
      };
    }),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseUrl = process.env.SLURMGATE_URL;
  if (!baseUrl) {
    console.error("set SLURMGATE_URL (and SLURMGATE_TOKEN) to your gateway and token");
    process.exit(2);
  }
  const client = createClient({ baseUrl, token: process.env.SLURMGATE_TOKEN });
  const shards = await run(client);
  for (const shard of shards) {
    if (shard.state === "completed") {
      console.log(`${shard.sample}: completed\n${shard.output.trimEnd()}`);
    } else {
      console.log(`${shard.sample}: ${shard.state} [${shard.code}] ${shard.reason}`);
    }
  }
  process.exitCode = shards.every((s) => s.state === "completed") ? 0 : 3;
}
