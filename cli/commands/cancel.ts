import { parse } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { UsageError } from "../errors.ts";
import { printJson } from "../output.ts";

export const cancel: Command = {
  name: "cancel",
  summary: "cancel jobs (safe to repeat)",
  help: `
Usage: slurmgate cancel JOB_ID... [--json]

A queued job is cancelled at once; a running one is marked and its agent runs scancel.
Cancelling a finished job changes nothing.

Examples:
  slurmgate cancel job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate ls --state queued --json | jq -r '.[].id' | xargs slurmgate cancel
`,
  async run(argv, io) {
    const { values, positionals: ids } = parse("cancel", argv, {});
    if (helped(io, cancel, values)) {
      return 0;
    }
    if (ids.length === 0) {
      throw new UsageError("missing JOB_ID", "cancel");
    }
    const client = clientFor(io);
    const jobs = [];
    for (const id of ids) {
      const job = await client.cancel(id, { signal: io.signal });
      jobs.push(job);
      if (!values.json) {
        const what = job.state === "cancelled" ? "cancelled" : `cancel requested (${job.state})`;
        io.stdout.write(`${job.id} ${what}\n`);
      }
    }
    if (values.json) {
      printJson(io, jobs.length === 1 ? jobs[0] : jobs);
    }
    return 0;
  },
};
