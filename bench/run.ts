/**
 * `npm run bench`: runs each section, then prints one table of ours / floor / ratio.
 * BENCH_QUICK=1 makes every section short; BENCH_ONLY=gateway,web,agent,restd,transfer picks sections;
 * BENCH_RESTD_CPUS=split gives Slurm's daemons and ours a CPU each in `restd` (bench/agent-restd.ts);
 * BENCH_JSON=path also writes the rows as JSON. History: BENCH_HISTORY_1M=1 adds the 1M-job tier,
 * BENCH_HISTORY_BASE=<git rev> measures that revision side by side (bench/gateway-history.ts).
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import * as agent from "./agent.ts";
import * as restd from "./agent-restd.ts";
import * as sweep from "./agent-sweep.ts";
import * as gateway from "./gateway.ts";
import * as web from "./web-page.ts";
import { runHistory } from "./gateway-history.ts";
import { runTransfer } from "./transfer.ts";
import * as worker from "./worker.ts";
import type { Row, Section } from "./types.ts";

/** Sections written to the simpler `{ name, value, baseline }` row shape. */
type SimpleRow = { name: string; value: number; unit: string; baseline?: number; ratio?: number; note?: string };
const simple =
  (name: string, run: (opts: { quick: boolean }) => Promise<SimpleRow[]>): Section["run"] =>
  async (opts) =>
    (await run(opts)).map((r) => ({
      section: name,
      metric: r.name,
      ours: r.value,
      floor: r.baseline ?? null,
      unit: r.unit,
      ratio: r.ratio ?? null,
      n: 0,
      target: r.note,
    }));

const SECTIONS: Section[] = [
  { name: "gateway", run: gateway.run },
  { name: "history", run: runHistory },
  { name: "web", run: web.run },
  { name: "agent", run: agent.run },
  { name: "sweep", run: sweep.run },
  { name: "restd", run: restd.run },
  { name: "transfer", run: runTransfer },
  { name: "worker", run: simple("worker", worker.run) },
];

const quick = process.env.BENCH_QUICK === "1";
const only = process.env.BENCH_ONLY?.split(",").filter(Boolean);
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

const fmt = (v: number | null | undefined, digits = 2) =>
  v === null || v === undefined || Number.isNaN(v) ? "-" : v >= 100 ? String(Math.round(v)) : v.toFixed(digits);

function table(rows: Row[]): string {
  const header = ["section", "metric", "ours", "floor", "unit", "ratio", "p50 ms", "p99 ms", "n", "target"];
  const lines = rows.map((r) => [
    r.section,
    r.metric,
    fmt(r.ours),
    fmt(r.floor),
    r.unit,
    fmt(r.ratio),
    fmt(r.p50),
    fmt(r.p99),
    String(r.n),
    r.target ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const render = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [render(header), render(widths.map((w) => "-".repeat(w))), ...lines.map(render)].join("\n");
}

const rows: Row[] = [];
for (const section of SECTIONS) {
  if (only && !only.includes(section.name)) {
    continue;
  }
  log(`section ${section.name}${quick ? " (quick)" : ""}`);
  rows.push(...(await section.run({ quick, log })));
}
process.stdout.write(
  `\nslurmgate bench — ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}${quick ? ", quick" : ""}\n\n${table(rows)}\n`,
);
if (process.env.BENCH_JSON) {
  writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(rows, null, 2)}\n`);
}
