import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import { followLogs } from "../watch.ts";

export const logs: Command = {
  name: "logs",
  summary: "print a job's stdout (or stderr); -f follows it",
  help: `
Usage: slurmgate logs JOB_ID [-f] [--stderr]

Options:
  -f, --follow    keep printing until the job ends and all output has arrived
      --stderr    the job's stderr instead of its stdout

Examples:
  slurmgate logs job_01jd7x2k9m4q8r6t5v3w1y0z
  slurmgate logs -f --stderr job_01jd7x2k9m4q8r6t5v3w1y0z
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("logs", argv, {
      follow: { type: "boolean", short: "f" },
      stderr: { type: "boolean" },
    });
    if (helped(io, logs, values)) {
      return 0;
    }
    const [id = ""] = positionals("logs", rest, ["JOB_ID"]);
    const client = clientFor(io);
    const stream = values.stderr ? "stderr" : "stdout";
    if (values.follow) {
      await followLogs(client, id, io, { stream });
      return 0;
    }
    for await (const text of client.logs(id, { stream, signal: io.signal })) {
      io.stdout.write(text);
    }
    return 0;
  },
};
