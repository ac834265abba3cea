import { basename } from "node:path";
import { parse } from "../args.ts";
import { duration } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { CliError, UsageError } from "../errors.ts";
import { buildSpec, SPEC_OPTIONS } from "../job-spec.ts";
import { outcome, printJson } from "../output.ts";
import { exitFor, followLogs, waitWithProgress } from "../watch.ts";

export const submit: Command = {
  name: "submit",
  summary: "submit a job from flags or a YAML/JSON file",
  help: `
Usage: slurmgate submit [options] -- COMMAND [ARGS...]
       slurmgate submit -f job.yaml [options]

Job:
  -n, --name NAME            job name (default: from the command)
  -c, --cluster NAME         cluster (default: the gateway routes by partition, GPU type and limits)
  -p, --partition NAME       Slurm partition
  -A, --account NAME         Slurm account        --qos NAME   --profile NAME
  -t, --time DURATION        wall time: 90m, 1h30m, 2-00:00:00
  -N, --nodes N              --ntasks-per-node N   --cpus N (per task)
      --mem SIZE             memory per node: 8G, 512M    --mem-per-cpu SIZE
  -G, --gpus [TYPE:]COUNT    e.g. a100:1, 2
  -e, --env K=V              environment (repeat)      -l, --label K=V   labels (repeat)
      --secret NAME          a secret the agent provides (repeat)
      --setup LINE           shell line before the command, e.g. 'module load cuda' (repeat)
  -w, --workdir PATH         working directory under the cluster's shared root
      --script FILE          run a bash script (- for stdin) instead of a command
      --image REF            run in Apptainer: /path/img.sif or docker://…
      --bind SRC[:DST][:ro]  bind mount into the container (repeat)
      --array INDEXES[%MAX]  job array, e.g. 0-99%10
      --after JOB[:COND]     dependency (afterok, afterany, afternotok, after) (repeat)
      --retries N            retry on preemption / node failure up to N times
      --sbatch-arg ARG       an sbatch option the cluster allows, e.g. --constraint=ib (repeat)
      --input LOCAL[:PATH]   upload a local file; the job finds it at PATH in its directory
                             (default: its file name), checked by sha-256 (repeat)
  -f, --file FILE            a job spec in YAML or JSON; flags override it

Then:
      --wait                 wait until the job ends (over its event stream, else long-poll);
                             exit 0 only if it completed
      --follow               print its stdout as it arrives until it ends (implies --wait)
      --timeout DURATION     give up waiting after this long (exit 4)
      --idempotency-key KEY  make re-running this command safe (default: random)
      --dry-run              ask the gateway where the job would run and why (every cluster
                             you may use, free GPUs, idle nodes, Slurm's start estimate);
                             nothing is submitted
      --print-spec           print the spec that would be sent, without asking the gateway
  -q, --quiet                print only the job id
      --json                 print the job as JSON

Exit: 0 submitted (or completed with --wait, or --dry-run found a cluster), 1 refused or unreachable, 2 bad usage,
      3 job did not complete, 4 --timeout, 130 interrupted (the job keeps running).

Examples:
  slurmgate submit --gpus a100:1 --time 1h --partition gpu -- python train.py --epochs 3
  slurmgate submit -f job.yaml --env LR=0.01 --wait
  slurmgate submit --input train.csv:data/train.csv -- python train.py data/train.csv
  slurmgate submit -n nightly --image docker://python:3.12 --follow -- python -c 'print(42)'
  ID=$(slurmgate submit -q -- ./run.sh)
`,
  async run(argv, io) {
    const { values, positionals } = parse("submit", argv, {
      ...SPEC_OPTIONS,
      wait: { type: "boolean" },
      follow: { type: "boolean" },
      timeout: { type: "string" },
      "idempotency-key": { type: "string" },
      "dry-run": { type: "boolean" },
      "print-spec": { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      input: { type: "string", multiple: true },
    });
    if (helped(io, submit, values)) {
      return 0;
    }
    const timeout = duration("submit", "--timeout", values.timeout);
    const needsStdin = values.file === "-" || values.script === "-";
    const spec = buildSpec(values, positionals, needsStdin ? await io.readStdin() : undefined);
    const inputs = (values.input ?? []).map(parseInput);
    if (values["print-spec"]) {
      const shown = inputs.map(({ local, path }) => ({ file: `(upload of ${local})`, path }));
      printJson(io, inputs.length ? { ...spec, inputs: [...(spec.inputs ?? []), ...shown] } : spec);
      return 0;
    }
    const client = clientFor(io);
    if (inputs.length) {
      const uploaded = [];
      for (const { local, path } of inputs) {
        try {
          uploaded.push(await client.upload(local, { path, signal: io.signal }));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "EISDIR") {
            throw new CliError(`--input ${local}: ${(err as Error).message}`);
          }
          throw err;
        }
      }
      spec.inputs = [...(spec.inputs ?? []), ...uploaded];
    }
    if (values["dry-run"]) {
      const plan = await client.preflight(spec, { signal: io.signal });
      if (values.json) {
        printJson(io, plan);
      } else {
        const head = plan.cluster
          ? `would run on ${plan.cluster}${plan.partition ? `/${plan.partition}` : ""}`
          : `would be refused: ${plan.refusal ?? "no cluster can run it"}`;
        const lines = plan.candidates.flatMap((c) => [
          `  ${c.cluster}: ${c.reason}`,
          ...(c.estimate ? [`    ${c.estimate.reason}`] : []),
        ]);
        io.stdout.write(`${[head, ...lines].join("\n")}\n`);
      }
      return plan.cluster ? 0 : 1;
    }
    const job = await client.submit(spec, { idempotencyKey: values["idempotency-key"], signal: io.signal });
    if (!values.wait && !values.follow) {
      if (values.json) {
        printJson(io, job);
      } else if (values.quiet) {
        io.stdout.write(`${job.id}\n`);
      } else {
        io.stdout.write(`${job.id} ${job.state} on ${job.cluster}${job.partition ? `/${job.partition}` : ""}\n`);
      }
      return 0;
    }
    if (!values.json && !values.quiet) {
      io.stderr.write(`${job.id} submitted to ${job.cluster}${job.partition ? `/${job.partition}` : ""}\n`);
    }
    if (values.follow) {
      await followLogs(client, job.id, io, { timeout });
    }
    const done = await waitWithProgress(client, job.id, io, { timeout });
    if (values.json) {
      printJson(io, done);
    } else if (values.quiet) {
      io.stdout.write(`${done.id}\n`);
    } else {
      (values.follow ? io.stderr : io.stdout).write(`${outcome(done)}\n`);
    }
    return exitFor(done);
  },
};

/** `--input LOCAL[:DEST]`: DEST (relative to the job directory) defaults to LOCAL's file name. */
function parseInput(value: string): { local: string; path: string } {
  const colon = value.indexOf(":");
  const local = colon < 0 ? value : value.slice(0, colon);
  const path = colon < 0 ? basename(value) : value.slice(colon + 1);
  if (!local || !path) {
    throw new UsageError(`--input ${value}: expected LOCAL[:PATH_IN_JOB_DIR], e.g. train.csv:data/train.csv`, "submit");
  }
  return { local, path };
}
