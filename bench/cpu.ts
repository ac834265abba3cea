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

/**
 * Starts a window: `end()` returns the CPU milliseconds each named process spent in it and the
 * share of the machine's CPUs that were busy (1 = every CPU, all the time). A process given as a
 * function of the window is this one (process.cpuUsage).
 */
export function cpuWindow(pids: Record<string, number>) {
  const start = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuMs(pid)]));
  const self = process.cpuUsage();
  const machine = machineTicks();
  return {
    end() {
      const ms: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pids)) {
        ms[name] = processCpuMs(pid) - start[name]!;
      }
      const mine = process.cpuUsage(self);
      ms.self = (mine.user + mine.system) / 1000;
      const now = machineTicks();
      return { ms, busyShare: (now.busy - machine.busy) / Math.max(1, now.total - machine.total) };
    },
  };
}

type CpuSample = { at: number; ms: Record<string, number>; busy: number; total: number };

/**
 * Samples the processes' CPU (and this process's, as `self`) every `everyMs` until stopped, so that a
 * window known only afterwards (from event times on the gateway's clock, Date.now) can be cut out:
 * `between(from, to)` spans the last sample at or before `from` to the first at or after `to`.
 */
export function cpuSampler(pids: Record<string, number>, everyMs = 20) {
  const samples: CpuSample[] = [];
  const take = () => {
    const { user, system } = process.cpuUsage();
    const ms: Record<string, number> = { self: (user + system) / 1000 };
    for (const [name, pid] of Object.entries(pids)) {
      try {
        ms[name] = processCpuMs(pid);
      } catch {
        ms[name] = samples.at(-1)?.ms[name] ?? 0; // gone (the bench fails on that elsewhere): its last figure
      }
    }
    samples.push({ at: Date.now(), ms, ...machineTicks() });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
    },
    between(from: number, to: number) {
      const first = samples.findLast((s) => s.at <= from) ?? samples[0]!;
      const last = samples.find((s) => s.at >= to) ?? samples.at(-1)!;
      const ms = Object.fromEntries(Object.keys(first.ms).map((k) => [k, last.ms[k]! - first.ms[k]!]));
      return { ms, busyShare: (last.busy - first.busy) / Math.max(1, last.total - first.total) };
    },
  };
}
