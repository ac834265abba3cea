/**
 * The sweep section of `npm run bench`, on the real local cluster `alpha`, side by side in one run:
 * one sweep of N elements (one `POST /v1/sweeps`) against the same N jobs submitted one request
 * each, through the same gateway and the same kind of agent.
 *
 * - accepted: the sweep request's own time, next to the N individual requests' total;
 * - in Slurm: first element leased → last Slurm id recorded (gateway clock), and the sbatch calls
 *   slurmctld counted (sdiag REQUEST_SUBMIT_BATCH_JOB), which should be ⌈N / MaxArraySize⌉;
 * - tracking: slurmctld RPCs per agent cycle while the N elements wait in Slurm, the agent's
 *   cycle pinned to 5 s (sdiag is controller-global, so the least of three windows is kept).
 *
 * Jobs are held with `--begin=now+7days` (allow-listed for this run) and every array and job the
 * run created is cancelled by id at the end.
 */
import { slurmClusters, startE2E } from "../test/e2e/harness.ts";
import { cancelIds, rpcDelta, sdiagCounts, slurmEnv } from "./agent-slurm.ts";
import { removeWhatAppears } from "../test/helpers/leftovers.ts";
import type { BenchOptions, Row } from "./types.ts";

const SECTION = "sweep";
const HOLD = "--begin=now+7days";
const CYCLE_S = 5;

type E2E = Awaited<ReturnType<typeof startE2E>>;

async function post(e2e: E2E, path: string, body: unknown): Promise<{ ms: number; json: unknown }> {
  const t = performance.now();
  const res = await fetch(e2e.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) {
    throw new Error(`${path} → ${res.status}: ${JSON.stringify(json).slice(0, 500)}`);
  }
  return { ms: performance.now() - t, json };
}

/** Waits until every job `where` selects (alias j) has a Slurm id; returns first lease → last Slurm id, gateway clock. */
async function intoSlurm(e2e: E2E, where: string, n: number, log: (l: string) => void): Promise<number> {
  for (let last = -1; ; ) {
    const rs = await e2e.gw.db.client.execute(`SELECT count(j.slurm_job_id) AS done FROM jobs j WHERE ${where}`);
    const done = Number(rs.rows[0]?.done);
    if (done >= n) {
      break;
    }
    if (done !== last) {
      log(`  ${done}/${n} in Slurm`);
      last = done;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
  const span = await e2e.gw.db.client.execute(`
    SELECT min(e.at) AS first, max(f.at) AS last FROM jobs j
      JOIN job_events e ON e.job_id = j.id AND e.state = 'leased'
      JOIN job_events f ON f.job_id = j.id AND f.state = 'submitted'
     WHERE ${where}`);
  return Number(span.rows[0]?.last) - Number(span.rows[0]?.first);
}

export async function run(opts: BenchOptions): Promise<Row[]> {
  const n = opts.quick ? 1_500 : 10_000;
  const alpha = slurmClusters().alpha;
  const env = slurmEnv(alpha.slurmConf);
  const removeJobDirs = removeWhatAppears(alpha.sharedRoot);
  const e2e = await startE2E(
    { SLURMGATE_MAX_QUEUED_PER_USER: "1000000", SLURMGATE_LEASE_SECONDS: "900", SLURMGATE_RATE_LIMIT_PER_SECOND: "0" },
    { alpha: { allowedSbatchArgs: ["--begin"] } },
  );
  const agent = e2e.startAgent("alpha", {
    SLURMGATE_ALLOWED_SBATCH_ARGS: "--begin",
    SLURMGATE_SUBMITS_PER_SECOND: "1000",
    SLURMGATE_MAX_LEASE: "100",
    SLURMGATE_TRACK_MIN_SECONDS: String(CYCLE_S),
    SLURMGATE_TRACK_MAX_SECONDS: String(CYCLE_S),
    SLURMGATE_LOG_LEVEL: "error",
  });
  try {
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const base = { name: "swp", command: ["echo", "{I}"], extraSbatchArgs: [HOLD], cluster: "alpha" };
    const grid = { I: Array.from({ length: n }, (_, i) => i) };

    opts.log(`sweep: ${n} elements in one request`);
    const before = await sdiagCounts(env);
    const sweep = await post(e2e, "/v1/sweeps", { base, grid });
    const sweepId = (sweep.json as { id: string }).id;
    const sweepInSlurm = await intoSlurm(e2e, `j.sweep_id = '${sweepId}'`, n, opts.log);
    const sweepRpcs = rpcDelta(before, await sdiagCounts(env));
    const sweepSbatch = sweepRpcs.byType.REQUEST_SUBMIT_BATCH_JOB ?? 0;

    opts.log(`sweep: tracking ${n} held elements, ${CYCLE_S} s cycles`);
    const windows: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = await sdiagCounts(env);
      await new Promise((r) => setTimeout(r, 6 * CYCLE_S * 1000));
      windows.push(rpcDelta(start, await sdiagCounts(env)).total / 6);
    }
    const perCycle = Math.min(...windows);

    opts.log(`sweep: the same ${n} jobs, one request each`);
    const individualBefore = await sdiagCounts(env);
    let individualMs = 0;
    for (let i = 0; i < n; i += 50) {
      const batch = Array.from({ length: Math.min(50, n - i) }, (_, k) =>
        post(e2e, "/v1/jobs", { ...base, name: "one", command: ["echo", String(i + k)] }),
      );
      for (const r of await Promise.all(batch)) {
        individualMs += r.ms;
      }
    }
    const oneByOneInSlurm = await intoSlurm(e2e, "j.name = 'one'", n, opts.log);
    const individualSbatch = rpcDelta(individualBefore, await sdiagCounts(env)).byType.REQUEST_SUBMIT_BATCH_JOB ?? 0;

    return [
      {
        section: SECTION,
        metric: `${n}-element sweep accepted (one request)`,
        ours: sweep.ms,
        floor: individualMs,
        unit: "ms",
        ratio: sweep.ms / individualMs,
        n,
        target: "≤ 1,000 ms; floor: the same jobs as individual POST /v1/jobs (sum of request times)",
      },
      {
        section: SECTION,
        metric: `${n} elements leased → all in Slurm`,
        ours: sweepInSlurm,
        floor: oneByOneInSlurm,
        unit: "ms",
        ratio: sweepInSlurm / oneByOneInSlurm,
        n,
        target: "floor: the same jobs submitted one by one by the same agent",
      },
      {
        section: SECTION,
        metric: "sbatch calls slurmctld saw (sdiag)",
        ours: sweepSbatch,
        floor: individualSbatch,
        unit: "calls",
        ratio: sweepSbatch / Math.max(1, individualSbatch),
        n,
        target: `⌈${n} / MaxArraySize⌉ (= ${Math.ceil(n / 1001)} at Slurm's default 1001)`,
      },
      {
        section: SECTION,
        metric: `slurmctld RPCs per agent cycle, ${n} elements waiting`,
        ours: perCycle,
        floor: null,
        unit: "RPC/cycle",
        ratio: null,
        n,
        target: "≤ 2 (least of three 6-cycle windows; sdiag counts everyone's RPCs)",
      },
    ];
  } finally {
    await agent.stop();
    const rs = await e2e.gw.db.client.execute("SELECT DISTINCT slurm_job_id FROM jobs WHERE slurm_job_id IS NOT NULL");
    const ids = new Set(rs.rows.map((r) => String(r.slurm_job_id).split("_")[0]!));
    await cancelIds(env, ids);
    await e2e.close();
    removeJobDirs();
  }
}
