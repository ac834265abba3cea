/**
 * CPU accounting for the benchmarks: what a process, and the whole machine, spent over a window.
 * Rates move with whatever else the machine runs; CPU per job does not, and it says how close a
 * saturated machine lets one side come to the other.
 */
import { readFileSync } from "node:fs";

/** user + system CPU of a live process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 10 ms). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The whole machine's busy and total CPU time (all CPUs), from the first line of /proc/stat, in ticks. */
function machineTicks(): { busy: number; total: number } {
  const [, ...values] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const ticks = values.map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3]! - ticks[4]!, total };
}

type CpuSample = { at: number; ms: Record<string, number>; busy: number; total: number };
type CpuSpan = { ms: Record<string, number>; busyShare: number };

/**
 * Each process's CPU so far, this one's as `self` (process.cpuUsage), and the machine's ticks. A
 * process that is gone keeps its figure in `previous` (the bench fails on that elsewhere).
 */
function sample(pids: Record<string, number>, previous?: CpuSample): CpuSample {
  const { user, system } = process.cpuUsage();
  const ms: Record<string, number> = { self: (user + system) / 1000 };
  for (const [name, pid] of Object.entries(pids)) {
    try {
      ms[name] = processCpuMs(pid);
    } catch {
      ms[name] = previous?.ms[name] ?? 0;
    }
  }
  return { at: Date.now(), ms, ...machineTicks() };
}

/** What each process spent between two samples, and the share of the machine's CPUs that were busy (1 = all, all the time). */
function span(first: CpuSample, last: CpuSample): CpuSpan {
  const ms = Object.fromEntries(Object.keys(first.ms).map((k) => [k, last.ms[k]! - first.ms[k]!]));
  return { ms, busyShare: (last.busy - first.busy) / Math.max(1, last.total - first.total) };
}

/** Starts a window now; `end()` returns its {@link CpuSpan}. */
export function cpuWindow(pids: Record<string, number>) {
  const first = sample(pids);
  return { end: () => span(first, sample(pids, first)) };
}

/**
 * Samples every `everyMs` until stopped, so that a window known only afterwards (from event times
 * on the gateway's clock, Date.now) can be cut out: `between(from, to)` spans the last sample at or
 * before `from` to the first at or after `to`. The sampling runs in this process and counts in its
 * `self`.
 */
export function cpuSampler(pids: Record<string, number>, everyMs = 20) {
  const samples: CpuSample[] = [sample(pids)];
  const take = () => samples.push(sample(pids, samples.at(-1)));
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
    },
    between(from: number, to: number): CpuSpan {
      const first = samples.findLast((s) => s.at <= from) ?? samples[0]!;
      const last = samples.find((s) => s.at >= to) ?? samples.at(-1)!;
      return span(first, last);
    },
  };
}
