import { parse, positionals } from "../args.ts";
import { UsageError } from "../errors.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { printJson, table } from "../output.ts";

export const show: Command = {
  name: "show",
  summary: "show a job, its spec, its history and (for an array) its tasks",
  help: `
Usage: slurmgate show JOB_ID [--json | --script]

An array job also lists each task with its state, exit code and how it ended
(in --json, as "tasks"). --script prints only the exact batch script the agent
gave sbatch (once the job has been submitted).

Examples:
  slurmgate show job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate show job_01jd7x2k9m4q8r6t5v3w1y0z --json | jq .result
  slurmgate show job_01jd7x2k9m4q8r6t5v3w1y0z --script > job.sbatch
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("show", argv, { script: { type: "boolean" } });
    if (helped(io, show, values)) {
      return 0;
    }
    const [id = ""] = positionals("show", rest, ["JOB_ID"]);
    if (values.script && values.json) {
      throw new UsageError("--script and --json do not go together", "show");
    }
    const client = clientFor(io);
    if (values.script) {
      io.stdout.write(await client.script(id, { signal: io.signal }));
      return 0;
    }
    const job = await client.get(id, { signal: io.signal });
    const tasks = job.spec?.array ? (await client.tasks(id, { signal: io.signal })).items : undefined;
    if (values.json) {
      printJson(io, tasks ? { ...job, tasks } : job);
      return 0;
    }
    const labels = Object.entries(job.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    const fields: [string, string][] = [
      ["name", job.name],
      ["state", `${job.state}${job.cancelRequested && job.state !== "cancelled" ? " (cancel requested)" : ""}`],
      ["where", `${job.cluster}${job.partition ? `/${job.partition}` : ""}`],
      ["slurm id", job.slurmJobId ?? "-"],
      ["attempt", String(job.attempt)],
      ["exit code", job.exitCode === null ? "-" : `${job.exitCode}${job.signal ? ` (signal ${job.signal})` : ""}`],
      ["reason", job.reason ? `${job.reason}${job.code ? ` [${job.code}]` : ""}` : "-"],
      ["command", job.spec ? (job.spec.command?.map(quote).join(" ") ?? "(script)") : "(unreadable spec)"],
      ["labels", labels || "-"],
      ["created", job.createdAt],
      ["updated", job.updatedAt],
    ];
    if (job.result !== null && job.result !== undefined) {
      fields.push(["result", JSON.stringify(job.result)]);
    }
    io.stdout.write(`${job.id}\n${table(fields.map(([k, v]) => [`  ${k}`, v]))}\n`);
    if (tasks) {
      const rows = tasks.map((t) => [
        `  ${t.task}`,
        t.state,
        t.exitCode === null ? "-" : `exit ${t.exitCode}${t.signal ? ` (signal ${t.signal})` : ""}`,
        t.reason ?? "",
      ]);
      io.stdout.write(
        rows.length ? `tasks\n${table(rows)}\n` : "tasks\n  (none reported yet: the array has not reached Slurm)\n",
      );
    }
    const events = job.events ?? [];
    if (events.length) {
      const rows = events.map((e) => [`  ${e.at}`, e.state ?? e.type, e.actor, e.detail ?? ""]);
      io.stdout.write(`events\n${table(rows)}\n`);
    }
    return 0;
  },
};

function quote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}
