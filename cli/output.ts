/**
 * Human output: aligned tables, key/value blocks, relative ages, and the progress line drawn on
 * stderr while waiting — only when stdout and stderr are terminals.
 */
import type { Job } from "../client/index.ts";
import { type Io, interactive } from "./io.ts";

export function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) {
    return "-";
  }
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m`;
  }
  if (s < 86_400) {
    return `${Math.floor(s / 3600)}h`;
  }
  return `${Math.floor(s / 86_400)}d`;
}

/** `job_… completed (exit 0)` / `job_… failed (exit 3): reason`. */
export function outcome(job: Job): string {
  const exit = job.exitCode === null ? "" : ` (exit ${job.exitCode}${job.signal ? `, signal ${job.signal}` : ""})`;
  const reason = job.reason && job.state !== "completed" ? `: ${job.reason}` : "";
  return `${job.id} ${job.state}${exit}${reason}`;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export type Progress = { update(text: string): void; stop(): void };

/** A spinner line on stderr when interactive; otherwise does nothing at all. */
export function progress(io: Io): Progress {
  if (!interactive(io)) {
    return { update() {}, stop() {} };
  }
  let text = "";
  let frame = 0;
  const started = Date.now();
  const draw = () => {
    const secs = Math.round((Date.now() - started) / 1000);
    io.stderr.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text} ${secs}s`);
  };
  const timer = setInterval(draw, 100);
  return {
    update(next) {
      text = next;
      draw();
    },
    stop() {
      clearInterval(timer);
      io.stderr.write("\r\x1b[2K");
    },
  };
}
