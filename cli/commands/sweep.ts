import type { SweepDetail, SweepElement } from "../../client/index.ts";
import { integer, parse, positionals } from "../args.ts";
import type { Command } from "../command.ts";
import { clientFor } from "../config.ts";
import { EXIT, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { age, printJson, table } from "../output.ts";
import { countsLine, countsOf } from "./sweep-bar.ts";
import { sweepSubmit } from "./sweep-submit.ts";

export const sweep: Command = {
  name: "sweep",
  summary: "many jobs in one request: submit (with --grid), show, results, cancel",
  help: `
Usage: slurmgate sweep submit [FILE] [--grid NAME=V1,V2,...]... [--max-parallel N] [--wait] [--json]
                              [job flags as for submit] [-- COMMAND [ARGS...]]
       slurmgate sweep show SWEEP_ID [--all] [--json]
       slurmgate sweep results SWEEP_ID [--json]
       slurmgate sweep cancel SWEEP_ID [--json]
       slurmgate sweep ls [--limit N] [--json]

A sweep is one request for many jobs; each element is a job of its own (slurmgate show, logs,
cancel work on it). Elements that differ only in name, env, command and labels reach Slurm as one
job array.

submit:
  FILE                     a job spec in YAML or JSON, as for submit -f: the base of every element;
                           or a whole sweep request (with specs, base, points or grid)
  --grid NAME=V1,V2        cross these values (repeat for more names): every combination is one
                           element; NAME is set as an env variable and a label, and {NAME} in the
                           command is replaced by the value. Values are strings.
  --max-parallel N         most elements running at once, enforced by Slurm (array %N)
  --sweep-name NAME        the sweep's name in lists (default: the base's name)
  --wait                   follow the sweep until every element ended: a bar on a terminal,
                           a line per change otherwise; exit 0 only if every element completed
  --timeout DURATION       give up waiting after this long (exit 4; the sweep keeps running)
  --idempotency-key KEY    make re-running this command safe (default: random)
  --dry-run                print the request that would be sent, and stop
  -q, --quiet              print only the sweep id
  --json                   print the created sweep (with --wait: the sweep and every element)

show:     state, counts and the elements (the first 50; --all for every one)
results:  one JSON line per element in element order (state, exit code, code and reason, result); --json: an array
cancel:   cancels every element still queued or running (safe to repeat)

Exit: 0 ok (with --wait: every element completed), 1 refused or unreachable, 2 bad usage,
      3 an element did not complete, 4 --timeout, 130 interrupted (the sweep keeps running).

Examples:
  slurmgate sweep submit train.yaml --grid LR=0.1,0.01 --grid SEED=1,2,3 --max-parallel 3 --wait
  slurmgate sweep submit --time 10m --grid N=1,2,3 -- python run.py --n {N}
  slurmgate sweep results swp_01jd7x2k9m4q8r6t5v3w1y0z | jq -c 'select(.state != "completed")'
`,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      io.stdout.write(`${sweep.help.trim()}\n`);
      return sub === undefined ? EXIT.usage : EXIT.ok;
    }
    const options = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
    if (options.includes("--help") || options.includes("-h")) {
      io.stdout.write(`${sweep.help.trim()}\n`);
      return EXIT.ok;
    }
    switch (sub) {
      case "submit":
        return sweepSubmit(rest, io, clientFor);
      case "show":
        return show(rest, io);
      case "results":
        return results(rest, io);
      case "cancel":
        return cancel(rest, io);
      case "ls":
        return ls(rest, io);
      default:
        throw new UsageError(
          `unknown sweep command ${JSON.stringify(sub)}: submit, show, results, cancel or ls`,
          "sweep",
        );
    }
  },
};

/** Elements shown by `sweep show` without `--all`. */
const SHOWN = 50;

async function show(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("sweep", argv, { all: { type: "boolean" } });
  const [id = ""] = positionals("sweep", rest, ["SWEEP_ID"]);
  const client = clientFor(io);
  const first = await client.getSweep(id, { limit: values.all ? 500 : SHOWN, signal: io.signal });
  const elements: SweepElement[] = [...first.elements];
  let detail: SweepDetail = first;
  while (values.all && detail.nextCursor) {
    detail = await client.getSweep(id, { cursor: detail.nextCursor, limit: 500, signal: io.signal });
    elements.push(...detail.elements);
  }
  if (values.json) {
    printJson(io, { ...first, elements, nextCursor: values.all ? null : first.nextCursor });
    return EXIT.ok;
  }
  const counts = Object.entries(first.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${state}=${n}`)
    .join(" ");
  const fields: [string, string][] = [
    ["name", first.name],
    ["state", first.state],
    ["progress", countsLine(countsOf(first))],
    ["counts", counts || "-"],
    ["max parallel", first.maxParallel === null ? "-" : String(first.maxParallel)],
    ["created", `${first.createdAt} (${age(first.createdAt)} ago)`],
    ["updated", first.updatedAt],
  ];
  io.stdout.write(`${first.id}\n${table(fields.map(([k, v]) => [`  ${k}`, v]))}\n`);
  const rows = elements.map((e) => [
    `  ${e.index}`,
    e.jobId,
    e.state,
    e.exitCode === null ? "-" : `exit ${e.exitCode}`,
    e.slurmJobId ?? "-",
    e.name,
  ]);
  io.stdout.write(`elements\n${table(rows)}\n`);
  if (elements.length < first.total) {
    io.stdout.write(`  (${elements.length} of ${first.total} shown; --all for every element)\n`);
  }
  return EXIT.ok;
}

async function results(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("sweep", argv, {});
  const [id = ""] = positionals("sweep", rest, ["SWEEP_ID"]);
  const lines = clientFor(io).sweepResults(id, { signal: io.signal });
  if (values.json) {
    const all = [];
    for await (const line of lines) {
      all.push(line);
    }
    printJson(io, all);
    return EXIT.ok;
  }
  for await (const line of lines) {
    io.stdout.write(`${JSON.stringify(line)}\n`);
  }
  return EXIT.ok;
}

async function cancel(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("sweep", argv, {});
  const [id = ""] = positionals("sweep", rest, ["SWEEP_ID"]);
  const cancelled = await clientFor(io).cancelSweep(id, { signal: io.signal });
  if (values.json) {
    printJson(io, cancelled);
  } else {
    io.stdout.write(`${cancelled.id} ${cancelled.state}: ${countsLine(countsOf(cancelled))}\n`);
  }
  return EXIT.ok;
}

async function ls(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("sweep", argv, { limit: { type: "string" } });
  positionals("sweep", rest, []);
  const max = integer("sweep", "--limit", values.limit) ?? 20;
  const sweeps = [];
  for await (const s of clientFor(io).listSweeps({ max, pageSize: Math.min(max, 100) || 1, signal: io.signal })) {
    sweeps.push(s);
  }
  if (values.json) {
    printJson(io, sweeps);
    return EXIT.ok;
  }
  const rows = sweeps.map((s) => [s.id, s.state, `${s.done}/${s.total}`, age(s.createdAt), s.name]);
  io.stdout.write(`${table([["ID", "STATE", "DONE", "AGE", "NAME"], ...rows])}\n`);
  return EXIT.ok;
}
