import { UsageError } from "../errors.ts";
import { integer, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";

const SOURCE = /^(job_[0-9a-z]{20,40}):(.*)$/;

export const cp: Command = {
  name: "cp",
  summary: "copy a job's outputs to this machine (one file, or every file under a prefix)",
  help: `
Usage: slurmgate cp [--attempt N] JOB_ID:PATH DEST

Copies outputs the job brought back (its spec's "outputs"). PATH names one file, or with a
trailing / every file under it, kept with their paths below it. Each file is checked against its
sha256 before it is kept. Lists what was copied, one "path -> dest (bytes)" line per file.

Options:
      --attempt N   an earlier attempt's outputs (default: the newest attempt that brought files back)

Examples:
  slurmgate cp job_01jd7x2k9m4q8r6t5v3w1y0z:results/ ./out/
  slurmgate cp job_01jd7x2k9m4q8r6t5v3w1y0z:model/final.pt ./final.pt
  slurmgate cp --attempt 1 job_01jd7x2k9m4q8r6t5v3w1y0z:results/ ./first-try/
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("cp", argv, { attempt: { type: "string" } });
    if (helped(io, cp, values)) {
      return 0;
    }
    const [source = "", dest = ""] = positionals("cp", rest, ["JOB_ID:PATH", "DEST"]);
    const m = SOURCE.exec(source);
    if (!m) {
      throw new UsageError(`${source} is not JOB_ID:PATH`, "cp");
    }
    const attempt = integer("cp", "--attempt", values.attempt);
    const copied = await clientFor(io).download(m[1]!, m[2]!, dest, { signal: io.signal, attempt });
    for (const file of copied) {
      io.stdout.write(`${file.path} -> ${file.dest} (${file.size} bytes)\n`);
    }
    return 0;
  },
};
