/**
 * `slurmgate sweep submit`: a job file (or flags and a command) as the base, `--grid` values to
 * cross, one request; with `--wait`, follows the sweep by its counts and exits 0 only when every
 * element completed. The CLI only shapes the request: the gateway expands and validates it.
 */
import {
  type SlurmgateClient,
  type Sweep,
  type SweepElement,
  type SweepRequestInput,
  WaitTimeoutError,
  isAbortError,
} from "../../client/index.ts";
import { duration, integer, parse } from "../args.ts";
import { EXIT, Interrupted, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { buildSpec, readJobFile, SPEC_OPTIONS } from "../job-spec.ts";
import { printJson, table } from "../output.ts";
import { countsLine, countsOf, sweepBar } from "./sweep-bar.ts";

const VERB = "sweep";

/** Keys that make a file a whole sweep request rather than a job spec. */
const SWEEP_KEYS = ["specs", "base", "points", "grid", "maxParallel"];

/**
 * Repeated `--grid NAME=V1,V2` → `{ NAME: ["V1", "V2"] }` (values stay strings).
 * @example parseGrid(["lr=0.1,0.01", "seed=1,2"]) // { lr: ["0.1", "0.01"], seed: ["1", "2"] }
 */
export function parseGrid(items: readonly string[] | undefined): Record<string, string[]> | undefined {
  if (!items?.length) {
    return undefined;
  }
  const grid: Record<string, string[]> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at <= 0) {
      throw new UsageError(`--grid wants NAME=VALUE[,VALUE…], got ${JSON.stringify(item)}`, VERB);
    }
    const name = item.slice(0, at);
    const text = item.slice(at + 1);
    if (Object.hasOwn(grid, name)) {
      throw new UsageError(`--grid ${name} is given twice; list all its values once: --grid ${name}=A,B,C`, VERB);
    }
    if (text === "") {
      throw new UsageError(`--grid ${name}= has no values; list them: --grid ${name}=A,B,C`, VERB);
    }
    grid[name] = text.split(",");
  }
  return grid;
}

/** How many elements at most are listed after a wait that did not end well; the rest are counted. */
const LISTED = 20;

export async function sweepSubmit(argv: string[], io: Io, clientFor: (io: Io) => SlurmgateClient): Promise<number> {
  const end = argv.indexOf("--");
  const command = end === -1 ? [] : argv.slice(end + 1);
  const { values, positionals } = parse(VERB, end === -1 ? argv : argv.slice(0, end), {
    ...SPEC_OPTIONS,
    grid: { type: "string", multiple: true },
    "max-parallel": { type: "string" },
    "sweep-name": { type: "string" },
    wait: { type: "boolean" },
    timeout: { type: "string" },
    "idempotency-key": { type: "string" },
    "dry-run": { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
  });
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[1])}`, VERB);
  }
  const file = positionals[0] ?? values.file;
  if (positionals[0] && values.file) {
    throw new UsageError("give the spec file once: as FILE or as -f FILE", VERB);
  }
  const timeout = duration(VERB, "--timeout", values.timeout);
  const maxParallel = integer(VERB, "--max-parallel", values["max-parallel"]);
  const grid = parseGrid(values.grid);
  const stdin = file === "-" || values.script === "-" ? await io.readStdin() : undefined;
  const request = buildRequest(values, file, command, stdin);
  if (grid) {
    request.grid = { ...request.grid, ...grid };
  }
  if (maxParallel !== undefined) {
    request.maxParallel = maxParallel;
  }
  if (values["sweep-name"]) {
    request.name = values["sweep-name"];
  }
  if (values["dry-run"]) {
    printJson(io, request);
    return EXIT.ok;
  }
  const client = clientFor(io);
  const created = await client.createSweep(request, {
    idempotencyKey: values["idempotency-key"],
    signal: io.signal,
  });
  const { id } = created;
  if (!values.wait) {
    if (values.json) {
      printJson(io, created);
    } else if (values.quiet) {
      io.stdout.write(`${id}\n`);
    } else {
      io.stdout.write(`${id} ${created.total} element${created.total === 1 ? "" : "s"} ${created.state}\n`);
    }
    return EXIT.ok;
  }
  if (!values.json && !values.quiet) {
    io.stderr.write(`${id} submitted: ${created.total} element${created.total === 1 ? "" : "s"}\n`);
  }
  const { sweep, elements } = await follow(client, id, io, { timeout, quiet: values.quiet });
  const notCompleted = elements.filter((e) => e.state !== "completed");
  if (values.json) {
    printJson(io, { ...sweep, elements });
  } else if (values.quiet) {
    io.stdout.write(`${id}\n`);
  } else {
    const rows = notCompleted
      .slice(0, LISTED)
      .map((e) => [
        `  ${e.index}`,
        e.jobId,
        e.state,
        e.exitCode === null ? "-" : `exit ${e.exitCode}`,
        e.reason ? e.reason.replace(/\s+/g, " ") : "",
      ]);
    if (rows.length) {
      const more = notCompleted.length > LISTED ? `\n  … and ${notCompleted.length - LISTED} more` : "";
      io.stdout.write(`not completed\n${table(rows)}${more}\n`);
    }
    io.stdout.write(`${id} ${sweep.state}: ${countsLine(countsOf(sweep))}\n`);
  }
  // Evidence, element by element: every one seen, and every one completed.
  const seen = elements.filter(Boolean).length;
  return seen === sweep.total && notCompleted.length === 0 ? EXIT.ok : EXIT.jobFailed;
}

/** The request from a sweep file as is, or a job spec (file and/or flags and command) as the base. */
function buildRequest(
  values: Parameters<typeof buildSpec>[0],
  file: string | undefined,
  command: string[],
  stdin: string | undefined,
): SweepRequestInput {
  const parsed = file ? readJobFile(file, stdin) : undefined;
  if (parsed && SWEEP_KEYS.some((k) => Object.hasOwn(parsed, k))) {
    const flags = Object.entries(values).filter(([k, v]) => k in SPEC_OPTIONS && k !== "file" && v !== undefined);
    if (flags.length || command.length) {
      throw new UsageError(
        `${file} is a sweep request (it has ${SWEEP_KEYS.filter((k) => Object.hasOwn(parsed, k)).join(", ")}); job flags and a command apply to a job spec file`,
        VERB,
      );
    }
    return { ...parsed } as SweepRequestInput;
  }
  try {
    return { base: buildSpec({ ...values, file }, command, stdin) };
  } catch (err) {
    // The spec's own usage errors, pointing at this verb's help.
    throw err instanceof UsageError ? new UsageError(err.message, VERB) : err;
  }
}

/** Follows the sweep to its end, with the bar; every element's final state in element order. */
async function follow(
  client: SlurmgateClient,
  id: string,
  io: Io,
  options: { timeout?: number; quiet?: boolean },
): Promise<{ sweep: Sweep; elements: SweepElement[] }> {
  const deadline = options.timeout === undefined ? undefined : AbortSignal.timeout(options.timeout);
  const signal = deadline ? AbortSignal.any([io.signal, deadline]) : io.signal;
  const bar = sweepBar(io, id, { quiet: options.quiet });
  const elements: SweepElement[] = [];
  let sweep: Sweep | undefined;
  try {
    for await (const element of client.sweepProgress(id, {
      signal,
      onSweep: (s) => {
        sweep = s;
        bar.update(s);
      },
    })) {
      elements[element.index] = element;
    }
  } catch (err) {
    if (deadline?.aborted && !io.signal.aborted) {
      const timedOut = new WaitTimeoutError({ id, state: sweep?.state ?? "unknown" }, options.timeout ?? 0);
      timedOut.message = `sweep ${id} is still ${sweep?.state ?? "active"} after ${Math.round((options.timeout ?? 0) / 1000)}s (${sweep ? countsLine(countsOf(sweep)) : "no answer yet"})`;
      throw timedOut;
    }
    if (isAbortError(err) && io.signal.aborted) {
      throw new Interrupted(`interrupted (the sweep keeps running; stop it with: slurmgate sweep cancel ${id})`);
    }
    throw err;
  } finally {
    bar.stop();
  }
  if (!sweep) {
    throw new Error(`sweep ${id}: no answer`);
  }
  return { sweep: omitPage(sweep), elements };
}

/** The sweep without the page of elements its detail carries. */
function omitPage(sweep: Sweep & { elements?: unknown; nextCursor?: unknown }): Sweep {
  const { elements: _elements, nextCursor: _nextCursor, ...rest } = sweep;
  return rest;
}
