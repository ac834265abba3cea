import type { Job, JobState } from "../../client/index.ts";
import { integer, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { age, printJson, table } from "../output.ts";
import { listJobDir } from "./job-dir.ts";

export const ls: Command = {
  name: "ls",
  summary: "list your jobs, newest first; with JOB[:PATH], a directory of that job's directory",
  help: `
Usage: slurmgate ls [--state STATE] [--label K=V]... [--cluster NAME] [--limit N | --all] [--json]
       slurmgate ls JOB_ID[:PATH] [--attempt N] [--json]

With JOB_ID[:PATH], lists that directory of the job's directory through the cluster's agent
(name, type, size, age; symlinks are shown with @ and never followed). A job back in the queue for a
retry shows its last run's directory; --attempt N picks another attempt's.

Options:
  -s, --state STATE     queued, leased, submitted, pending, running, completed, failed, cancelled, …
  -l, --label K=V       only jobs with this label (repeat to require several)
  -c, --cluster NAME    only jobs on this cluster
  -n, --limit N         at most N jobs (default 50)
  -a, --all             every job (follows all pages)
      --json            a JSON array of jobs

Examples:
  slurmgate ls
  slurmgate ls --state running --label sweep=lr
  slurmgate ls --all --json | jq -r '.[] | select(.state=="failed") | .id'
  slurmgate ls job_01jd7x2k9m4q8r6t5v3w1y0z:results
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("ls", argv, {
      state: { type: "string", short: "s" },
      label: { type: "string", short: "l", multiple: true },
      cluster: { type: "string", short: "c" },
      limit: { type: "string", short: "n" },
      all: { type: "boolean", short: "a" },
      attempt: { type: "string" },
    });
    if (helped(io, ls, values)) {
      return 0;
    }
    if (rest.length > 0) {
      const [arg = ""] = positionals("ls", rest, ["JOB_ID[:PATH]"]);
      return listJobDir(io, arg, values.json === true, integer("ls", "--attempt", values.attempt));
    }
    const max = values.all ? undefined : (integer("ls", "--limit", values.limit) ?? 50);
    const label = Object.fromEntries(
      (values.label ?? []).map((l) => [l.split("=")[0] ?? l, l.split("=").slice(1).join("=")]),
    );
    const jobs: Job[] = [];
    for await (const job of clientFor(io).list({
      state: values.state as JobState | undefined,
      cluster: values.cluster,
      label: values.label?.length ? label : undefined,
      pageSize: Math.min(max ?? 500, 500),
      max,
      signal: io.signal,
    })) {
      jobs.push(job);
    }
    if (values.json) {
      printJson(io, jobs);
      return 0;
    }
    if (jobs.length === 0) {
      io.stderr.write("no jobs\n");
      return 0;
    }
    const rows = jobs.map((j) => [
      j.id,
      j.name,
      j.state,
      `${j.cluster}${j.partition ? `/${j.partition}` : ""}`,
      j.slurmJobId ?? "-",
      age(j.createdAt),
    ]);
    io.stdout.write(`${table([["ID", "NAME", "STATE", "WHERE", "SLURM", "AGE"], ...rows])}\n`);
    return 0;
  },
};
