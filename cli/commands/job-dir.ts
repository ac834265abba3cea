/**
 * `slurmgate ls JOB[:PATH]`, `slurmgate head JOB:PATH [-c BYTES]`, `slurmgate tail JOB:PATH [-c BYTES]`:
 * a job's directory, read through its cluster's agent.
 */
import { UsageError } from "../errors.ts";
import { integer, parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor } from "../config.ts";
import type { Io } from "../io.ts";
import { age, printJson, table } from "../output.ts";

/**
 * Splits `JOB[:PATH]` at the first colon (a job id has none).
 * @example jobAndPath("ls", "job_01…:results/a.txt", false) // => { id: "job_01…", path: "results/a.txt" }
 */
export function jobAndPath(verb: string, arg: string, needPath: boolean): { id: string; path: string } {
  const at = arg.indexOf(":");
  const id = at < 0 ? arg : arg.slice(0, at);
  const path = at < 0 ? "" : arg.slice(at + 1);
  if (!id) {
    throw new UsageError(`${JSON.stringify(arg)}: give JOB_ID${needPath ? ":PATH" : "[:PATH]"}`, verb);
  }
  if (needPath && !path) {
    throw new UsageError(`${JSON.stringify(arg)}: give the file as JOB_ID:PATH`, verb);
  }
  return { id, path };
}

/** The listing part of `slurmgate ls` (see ls.ts). */
export async function listJobDir(io: Io, arg: string, json: boolean, attempt?: number): Promise<number> {
  const { id, path } = jobAndPath("ls", arg, false);
  const listing = await clientFor(io).browse(id, path, { signal: io.signal, attempt });
  if (json) {
    printJson(io, listing);
    return 0;
  }
  const rows = listing.entries.map((e) => [
    e.type === "dir" ? `${e.name}/` : e.type === "symlink" ? `${e.name}@` : e.name,
    e.type,
    String(e.size),
    age(e.mtime),
  ]);
  io.stdout.write(`${table([["NAME", "TYPE", "SIZE", "MODIFIED"], ...rows])}\n`);
  if (listing.truncated) {
    io.stderr.write(`only the first ${listing.entries.length} entries are shown\n`);
  }
  return 0;
}

function readCommand(from: "head" | "tail"): Command {
  const command: Command = {
    name: from,
    summary: `print the ${from === "head" ? "first" : "last"} bytes of a file in a job's directory`,
    help: `
Usage: slurmgate ${from} JOB_ID:PATH [-c BYTES] [--attempt N]

Reads the file through the cluster's agent, inside the job's directory, as the job's account;
symlinks are never followed. PATH is relative to the job directory.

Options:
  -c, --bytes BYTES   how many bytes (default 4096, at most 65536)
      --attempt N     an earlier attempt's directory (default: the current one once it reached
                      Slurm, else the one before it)

Examples:
  slurmgate ${from} job_01jd7x2k9m4q8r6t5v3w1y0z:stdout
  slurmgate ${from} -c 65536 job_01jd7x2k9m4q8r6t5v3w1y0z:results/metrics.json
`,
    async run(argv, io) {
      const { values, positionals: rest } = parse(from, argv, {
        bytes: { type: "string", short: "c" },
        attempt: { type: "string" },
      });
      if (helped(io, command, values)) {
        return 0;
      }
      const [arg = ""] = positionals(from, rest, ["JOB_ID:PATH"]);
      const { id, path } = jobAndPath(from, arg, true);
      const bytes = integer(from, "--bytes", values.bytes);
      const attempt = integer(from, "--attempt", values.attempt);
      const got = await (from === "head" ? clientFor(io).head : clientFor(io).tail)(id, path, {
        bytes,
        attempt,
        signal: io.signal,
      });
      io.stdout.write(got.bytes);
      if (got.truncated && io.stderr.isTTY) {
        io.stderr.write(`\n(${got.bytes.length} of ${got.size} bytes)\n`);
      }
      return 0;
    },
  };
  return command;
}

export const head = readCommand("head");
export const tail = readCommand("tail");
