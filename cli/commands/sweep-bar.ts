/**
 * The progress of a sweep while `sweep submit --wait` follows it: on a terminal, one bar redrawn in
 * place on stderr (done/running/pending/failed); otherwise a plain line on stderr each time the
 * counts change, so a log file shows the progress without control characters.
 */
import { LIVE_STATES, type Sweep } from "../../client/index.ts";
import { type Io, interactive } from "../io.ts";

export type SweepCounts = {
  done: number;
  total: number;
  running: number;
  pending: number;
  failed: number;
  cancelled: number;
};

const WAITING: readonly string[] = LIVE_STATES.filter((s) => s !== "running");

/**
 * Folds a sweep's counts per job state into what the bar shows: `failed` is every element that
 * ended in another way than completed or cancelled, `pending` every live one not running.
 * @example countsOf(sweep) // { done: 12, total: 24, running: 3, pending: 9, failed: 1, cancelled: 0 }
 */
export function countsOf(sweep: Pick<Sweep, "counts" | "done" | "total">): SweepCounts {
  let running = 0;
  let pending = 0;
  for (const [state, n] of Object.entries(sweep.counts)) {
    if (state === "running") {
      running += n;
    } else if (WAITING.includes(state)) {
      pending += n;
    }
  }
  const cancelled = sweep.counts.cancelled ?? 0;
  const failed = sweep.done - (sweep.counts.completed ?? 0) - cancelled;
  return { done: sweep.done, total: sweep.total, running, pending, failed, cancelled };
}

/** `12/24 done · 3 running · 9 pending · 1 failed` (and `· N cancelled` when some were). */
export function countsLine(c: SweepCounts): string {
  const cancelled = c.cancelled ? ` · ${c.cancelled} cancelled` : "";
  return `${c.done}/${c.total} done · ${c.running} running · ${c.pending} pending · ${c.failed} failed${cancelled}`;
}

const WIDTH = 24;

function bar(c: SweepCounts): string {
  const filled = c.total === 0 ? WIDTH : Math.floor((c.done / c.total) * WIDTH);
  return `[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}]`;
}

export type SweepBar = { update(sweep: Sweep): void; stop(): void };

/** A redrawn bar on a terminal, plain lines when not; nothing at all with `quiet`. */
export function sweepBar(io: Io, id: string, options: { quiet?: boolean } = {}): SweepBar {
  if (options.quiet) {
    return { update() {}, stop() {} };
  }
  let last = "";
  if (!interactive(io)) {
    return {
      update(sweep) {
        const line = `${id} ${countsLine(countsOf(sweep))}`;
        if (line !== last) {
          last = line;
          io.stderr.write(`${line}\n`);
        }
      },
      stop() {},
    };
  }
  const started = Date.now();
  let counts: SweepCounts | undefined;
  const draw = () => {
    if (counts) {
      const secs = Math.round((Date.now() - started) / 1000);
      io.stderr.write(`\r\x1b[2K${id} ${bar(counts)} ${countsLine(counts)} ${secs}s`);
    }
  };
  const timer = setInterval(draw, 1_000);
  return {
    update(sweep) {
      counts = countsOf(sweep);
      draw();
    },
    stop() {
      clearInterval(timer);
      io.stderr.write("\r\x1b[2K");
    },
  };
}
