import type { JobState } from "../../client/index.ts";
import { duration, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { outcome, printJson } from "../output.ts";
import { exitFor, waitWithProgress } from "../watch.ts";

export const wait: Command = {
  name: "wait",
  summary: "wait for a job to end; exit 0 only if it completed",
  help: `
Usage: slurmgate wait JOB_ID [--timeout DURATION] [--until STATE[,STATE]] [--json]

Follows the job's event stream (server-sent events: one request, each change the moment it
happens), until the job's final attempt ends: a timeout that its retries turn into a new attempt
does not end it. Where no stream gets through (a proxy that buffers or answers JSON), it
long-polls instead (one request per event or per 25 s, never a tight loop).
While the gateway cannot be reached (a restart), it keeps trying for SLURMGATE_OUTAGE_SECONDS
(default 300), then exits 1.

Options:
      --timeout DURATION   give up after 90s, 10m, 2h… (exit 4)
      --until STATES       stop at these states instead, e.g. running (exit 0 when reached)
      --json               print the job as JSON when done

Exit: 0 completed (or reached --until), 3 ended otherwise (failed, cancelled, timeout, …),
      4 --timeout, 1 API or network error, 130 interrupted.

Examples:
  slurmgate wait job_01jd7x2k9m4q8r6t5v3w1y0z && echo done
  slurmgate wait --until running --timeout 30m job_01jd7x2k9m4q8r6t5v3w1y0z
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("wait", argv, {
      timeout: { type: "string" },
      until: { type: "string" },
    });
    if (helped(io, wait, values)) {
      return 0;
    }
    const [id = ""] = positionals("wait", rest, ["JOB_ID"]);
    const timeout = duration("wait", "--timeout", values.timeout);
    const until = values.until ? (values.until.split(",").map((s) => s.trim()) as JobState[]) : undefined;
    const job = await waitWithProgress(clientFor(io), id, io, { timeout, until });
    if (values.json) {
      printJson(io, job);
    } else {
      io.stdout.write(`${outcome(job)}\n`);
    }
    return exitFor(job, until);
  },
};
