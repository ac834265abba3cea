import { SERVICE_NAME } from "../../schemas/job.ts";
import { UsageError } from "../errors.ts";
import { integer, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { followLogs } from "../watch.ts";

export const logs: Command = {
  name: "logs",
  summary: "print a job's stdout (or stderr, or a service's log); -f follows it",
  help: `
Usage: slurmgate logs JOB_ID [-f] [--stderr] [--attempt N | --all-attempts] [--task N | --service NAME]

Options:
  -f, --follow      keep printing until the job ends and all output has arrived (a retry's next
                    attempt is followed too; a gateway restart is ridden out). Each read is held
                    by the gateway and returns the moment new bytes arrive: no polling interval
      --stderr      the job's stderr instead of its stdout
      --attempt N   the log of attempt N (1 is the first run; default: the latest)
      --all-attempts
                    every attempt's log in order, from the first: one log of a job that
                    resumed from its checkpoint after a time limit or a preemption
      --task N      an array job's task N: that task's own log
      --service NAME
                    the log of the job's service NAME (spec.services): what it wrote to stdout,
                    or to stderr with --stderr; a name the job does not have is an error

Environment: SLURMGATE_OUTAGE_SECONDS (default 300) is how long -f keeps trying while the
gateway cannot be reached.

Examples:
  slurmgate logs job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs -f --stderr job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs --attempt 1 job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs --task 3 job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs -f --service model job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs -f --all-attempts job_01jd7x2k9m4q8r6t5v3w1y0z
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("logs", argv, {
      follow: { type: "boolean", short: "f" },
      stderr: { type: "boolean" },
      attempt: { type: "string" },
      "all-attempts": { type: "boolean" },
      task: { type: "string" },
      service: { type: "string" },
    });
    if (helped(io, logs, values)) {
      return 0;
    }
    const [id = ""] = positionals("logs", rest, ["JOB_ID"]);
    const attempt = integer("logs", "--attempt", values.attempt);
    if (attempt === 0) {
      throw new UsageError("--attempt counts from 1", "logs");
    }
    const allAttempts = values["all-attempts"] === true;
    if (allAttempts && attempt !== undefined) {
      throw new UsageError("give --attempt N or --all-attempts, not both", "logs");
    }
    const task = integer("logs", "--task", values.task);
    const service = values.service;
    if (service !== undefined && !SERVICE_NAME.test(service)) {
      throw new UsageError(
        `--service ${JSON.stringify(service)}: a service name is lowercase letters, digits and '-', starting with a letter`,
        "logs",
      );
    }
    if (service !== undefined && task !== undefined) {
      throw new UsageError("give --task N or --service NAME, not both", "logs");
    }
    const client = clientFor(io);
    const stream = values.stderr ? "stderr" : "stdout";
    if (values.follow) {
      await followLogs(client, id, io, { stream, attempt, allAttempts, task, service });
      return 0;
    }
    for await (const text of client.logs(id, { stream, attempt, allAttempts, task, service, signal: io.signal })) {
      io.stdout.write(text);
    }
    return 0;
  },
};
