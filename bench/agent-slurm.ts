/**
 * Raw Slurm helpers for the agent bench: sdiag RPC counters, the raw sbatch loops the agent is
 * compared with, and cancelling exactly the job ids the bench created (the test clusters are shared
 * with other engineers' tests, so nothing here ever cancels by user, name or state).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

export type SlurmEnv = Record<string, string>;

export function slurmEnv(slurmConf: string): SlurmEnv {
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    SLURM_CONF: slurmConf,
    LC_ALL: "C",
    TZ: "UTC",
  };
}

/** Runs a command with stdin closed (as the agent's executor does); rejects on a non-zero exit. */
export function exec(
  cmd: string,
  args: string[],
  env: SlurmEnv,
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d));
    child.stderr?.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve({ stdout, stderr })
        : reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")}… exited ${code}: ${stderr.trim()}`)),
    );
    child.stdin?.end(input);
  });
}

/** sdiag's "Remote Procedure Call statistics by message type": message type → count. */
export async function sdiagCounts(env: SlurmEnv): Promise<Map<string, number>> {
  const { stdout } = await exec("sdiag", [], env);
  const start = stdout.indexOf("Remote Procedure Call statistics by message type");
  const end = stdout.indexOf("Remote Procedure Call statistics by user");
  const counts = new Map<string, number>();
  for (const line of stdout.slice(start, end === -1 ? undefined : end).split("\n")) {
    const m = /^\s*([A-Z0-9_]+)\s+\(\s*\d+\)\s+count:(\d+)/.exec(line);
    if (m) {
      counts.set(m[1]!, Number(m[2]));
    }
  }
  return counts;
}

export type RpcDelta = { total: number; byType: Record<string, number> };

export function rpcDelta(before: Map<string, number>, after: Map<string, number>): RpcDelta {
  const byType: Record<string, number> = {};
  let total = 0;
  for (const [type, count] of after) {
    if (type === "REQUEST_STATS_INFO") {
      continue; // sdiag itself: the measuring instrument, not load
    }
    const d = count - (before.get(type) ?? 0);
    if (d > 0) {
      byType[type] = d;
      total += d;
    }
  }
  return { total, byType };
}

/** Counts the slurmctld RPCs made while `fn` runs (controller-global: includes anyone else's). */
export async function countRpcs<T>(
  env: SlurmEnv,
  fn: () => Promise<T>,
): Promise<{ value: T; rpcs: RpcDelta; ms: number }> {
  const before = await sdiagCounts(env);
  const t = performance.now();
  const value = await fn();
  const ms = performance.now() - t;
  const after = await sdiagCounts(env);
  return { value, rpcs: rpcDelta(before, after), ms };
}

const BASH_LOOP = 'for f in "$@"; do sbatch --parsable --hold --export=NONE "$f" || exit 1; done; times';
const XARGS_LOOP = 'xargs -0 -n 1 -P "$1" sbatch --parsable --hold --export=NONE; times';

/**
 * The raw floor: `sbatch --parsable --hold --export=NONE <script>` over the same scripts, from a bash
 * loop (sequential) or `xargs -P` (parallel). Returns the Slurm job ids, the wall time, and the CPU
 * time (user + system) its sbatch processes took, from bash's `times`.
 */
export async function rawSbatchLoop(
  env: SlurmEnv,
  scripts: string[],
  parallel = 1,
): Promise<{ ids: string[]; seconds: number; cpuMs: number }> {
  const t = performance.now();
  const { stdout } =
    parallel === 1
      ? await exec("bash", ["-c", BASH_LOOP, "bench", ...scripts], env)
      : await exec("bash", ["-c", XARGS_LOOP, "bench", String(parallel)], env, scripts.map((s) => `${s}\0`).join(""));
  const seconds = (performance.now() - t) / 1000;
  const lines = stdout.split("\n").map((l) => l.trim());
  const ids = lines.map((l) => l.split(";")[0]!).filter((l) => /^\d+$/.test(l));
  return { ids, seconds, cpuMs: childrenCpuMs(lines) };
}

/** The children's line of bash's `times` ("0m1.234s 0m0.567s", the last such line): user + system, in ms. */
function childrenCpuMs(lines: string[]): number {
  const times = lines.filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l)).at(-1);
  const seconds = (times ?? "").split(" ").map((part) => {
    const [, m, s] = /^(\d+)m([\d.]+)s$/.exec(part) ?? [];
    return Number(m) * 60 + Number(s);
  });
  return times ? (seconds[0]! + seconds[1]!) * 1000 : Number.NaN;
}

const NODE_LOOP = `
const { spawn } = require("node:child_process");
(async () => {
  for (const f of process.argv.slice(1)) {
    const t = performance.now();
    const id = await new Promise((resolve, reject) => {
      const c = spawn("sbatch", ["--parsable", "--hold", "--export=NONE", f], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("error", reject);
      c.on("close", (code) => (code === 0 ? resolve(out.trim().split(";")[0]) : reject(new Error("sbatch exit " + code))));
    });
    process.stdout.write(id + " " + (performance.now() - t) + "\\n");
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

const BASH_TIMED =
  'for f in "$@"; do s=$EPOCHREALTIME; sbatch --parsable --hold --export=NONE "$f" || exit 1; e=$EPOCHREALTIME; echo "t $s $e"; done';

function parseTimed(stdout: string, bash: boolean): { ids: string[]; ms: number[] } {
  const ids: string[] = [];
  const ms: number[] = [];
  for (const line of stdout.split("\n").filter(Boolean)) {
    const parts = line.trim().split(" ");
    if (bash && parts[0] === "t") {
      ms.push((Number(parts[2]) - Number(parts[1])) * 1000);
    } else if (bash) {
      ids.push(parts[0]!.split(";")[0]!);
    } else {
      ids.push(parts[0]!);
      ms.push(Number(parts[1]));
    }
  }
  return { ids, ms };
}

/**
 * sbatch spawned one at a time from a small, separate Node process (the agent's mechanism at a
 * similar heap size; fork cost grows with the parent's memory, so not from this big bench process).
 */
export async function nodeSbatchLoop(env: SlurmEnv, scripts: string[]): Promise<{ ids: string[]; ms: number[] }> {
  const node = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  return parseTimed((await exec(node, ["-e", NODE_LOOP, ...scripts], env)).stdout, false);
}

/** sbatch alone, timed per call inside a bash loop (`$EPOCHREALTIME`, no extra forks in the timing). */
export async function timedSbatch(env: SlurmEnv, scripts: string[]): Promise<{ ids: string[]; ms: number[] }> {
  return parseTimed((await exec("bash", ["-c", BASH_TIMED, "bench", ...scripts], env)).stdout, true);
}

/** The naive watcher: one `squeue -h -j ID` per job, in sequence. */
export async function naiveSqueueLoop(env: SlurmEnv, ids: string[]): Promise<void> {
  await exec("bash", ["-c", 'for id in "$@"; do squeue -h -j "$id" >/dev/null || exit 1; done', "naive", ...ids], env);
}

/** scancel by explicit id only, in chunks; ids that already ended are fine. */
export async function cancelIds(env: SlurmEnv, ids: Iterable<string>): Promise<void> {
  const unique = [...new Set(ids)].filter((id) => /^\d+$/.test(id));
  for (let i = 0; i < unique.length; i += 400) {
    try {
      await exec("scancel", unique.slice(i, i + 400), env);
    } catch {
      // scancel exits non-zero when some ids are already gone; the others were still signalled.
    }
  }
}

/** Slurm job ids whose comment tag names one of these slurmgate job ids (the safety net for cleanup). */
export async function idsTagged(env: SlurmEnv, jobIds: Set<string>): Promise<string[]> {
  const { stdout } = await exec("squeue", ["-h", "-t", "PD,R,S,CF,CG", "-o", "%i|%k"], env);
  const out: string[] = [];
  for (const line of stdout.split("\n")) {
    const [id, comment] = line.split("|");
    const jobId = /^slurmgate:(job_[0-9a-z]+):\d+$/.exec(comment?.trim() ?? "")?.[1];
    if (id && jobId && jobIds.has(jobId)) {
      out.push(id.trim());
    }
  }
  return out;
}
