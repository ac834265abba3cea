/**
 * The `restd` section of `npm run bench`: the agent's REST backend next to slurmrestd's own
 * submission rate, side by side in one run, on the real cluster `alpha`.
 *
 * slurmrestd (rest_auth/local, unix socket) runs as the unprivileged sg-alice, and so does the
 * agent. At concurrency 1 and 4: WARM_UP + N intents queued at the gateway, then the agent started
 * with SLURMGATE_SUBMIT_CONCURRENCY=c; the window is the N's alone (their first lease → last Slurm job
 * id recorded, gateway clock), so the agent is measured as the daemon it is, its code compiled by
 * V8's JIT on the warm-up batch (its first lease call, as in the sbatch section); then a
 * small Node client posting the very scripts the agent rendered straight to the socket, c requests
 * in flight, keep-alive, with a Content-Length: slurmrestd's own rate, the floor. A bash `sbatch`
 * loop over the same scripts is there for context. Jobs are held with `--begin=now+7days` and every
 * id is cancelled at the end.
 *
 * BENCH_RESTD_CPUS=split puts Slurm's side (slurmrestd, slurmctld, munged) on CPU 0 and this
 * process (gateway, bare client) and the agent on CPU 1, for both measurements: a site's controller
 * does not share its CPUs with the agent and the gateway. Unset (`shared`), everything shares every CPU.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { buildAgent } from "../scripts/build-agent.ts";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { type RestClient, createRestClient } from "../agent/slurm-rest/client.ts";
import { REST_API } from "../agent/slurm-rest/commands.ts";
import { buildRestSubmission } from "../agent/slurm-rest/job-properties.ts";
import { JOB_FILES } from "../agent/render/data-files.ts";
import { startSlurmrestd } from "../test/helpers/slurmrestd.ts";
import { type E2E, slurmClusters, startE2E } from "../test/e2e/harness.ts";
import { ensurePosixUser, spawnAgentAs } from "../test/e2e/posix-users.ts";
import { WARM_UP } from "./agent.ts";
import { cancelIds, rawSbatchLoop, slurmEnv } from "./agent-slurm.ts";
import { cpuSampler, cpuWindow } from "./cpu.ts";
import type { BenchOptions, Row } from "./types.ts";

const SECTION = "restd";
const HOLD_ARG = "--begin=now+7days";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x: number) => Math.round(x * 100) / 100;

export async function run(opts: BenchOptions): Promise<Row[]> {
  const n = opts.quick ? 60 : 300;
  const layout = cpuLayout(process.env.BENCH_RESTD_CPUS);
  const alpha = slurmClusters().alpha;
  const env = slurmEnv(alpha.slurmConf);
  const alice = ensurePosixUser("sg-alice");
  const root = mkdtempSync("/var/tmp/sg-bench-restd-");
  chmodSync(root, 0o1777);
  // The agent as it ships, as in the sbatch section (BENCH_AGENT_BUNDLE: one built elsewhere).
  const bundle = process.env.BENCH_AGENT_BUNDLE ?? (await buildAgent(join(root, "slurmgate-agent.mjs"))).file;
  const daemon = await startSlurmrestd({ slurmConf: alpha.slurmConf, user: alice });
  const client = createRestClient({ target: { socketPath: daemon.socketPath }, timeoutMs: 60_000 });
  const e2e = await startE2E({ SLURMGATE_MAX_QUEUED_PER_USER: "1000000", SLURMGATE_LEASE_SECONDS: "900" });
  const slurmSide = { slurmrestd: daemon.child.pid!, ...slurmDaemonPids(alpha.slurmConf) };
  if (layout === "split") {
    pinTo("0", Object.values(slurmSide));
    pinTo("1", [process.pid]); // the agent, started by this process, inherits it
  }
  const created = new Set<string>();
  const rows: Row[] = [];
  const notes: Record<string, unknown>[] = [];
  try {
    const token = await e2e.gw.cluster("alpha", { sharedRoots: [root], allowedSbatchArgs: ["--begin"] });
    let posted = 0;
    for (const c of [1, 4]) {
      const load = loadavg()[0] ?? 0;
      opts.log(`restd: gateway+agent over slurmrestd, ${n} jobs, concurrency ${c}`);
      const warm = await postMany(e2e, WARM_UP, posted);
      const ids = await postMany(e2e, n, posted + WARM_UP);
      posted += WARM_UP + n;
      const agent = spawnAgentAs(
        alice,
        {
          ...e2e.agentEnv("alpha", {
            SLURMGATE_AGENT_TOKEN: token,
            SLURMGATE_SHARED_ROOTS: root,
            SLURMGATE_STATE_FILE: `/home/${alice.name}/bench-restd-${Date.now()}.json`,
            SLURMGATE_SLURMRESTD: daemon.target,
            SLURMGATE_SLURMRESTD_USER: alice.name,
            SLURMGATE_ALLOWED_SBATCH_ARGS: "--begin",
            SLURMGATE_SUBMIT_CONCURRENCY: String(c),
            SLURMGATE_SUBMITS_PER_SECOND: "1000",
            SLURMGATE_MAX_LEASE: String(WARM_UP),
            SLURMGATE_POLL_WAIT_SECONDS: "20",
            SLURMGATE_TRACK_MIN_SECONDS: "2",
            SLURMGATE_TRACK_MAX_SECONDS: "60",
            SLURMGATE_LOG_LEVEL: "error",
          }),
        },
        bundle,
      );
      // CPU over the measured window alone (its ends are known only afterwards): the agent's first
      // track, a full listing of the queue right after the warm-up batch, falls outside it.
      const sampler = cpuSampler({ agent: agent.child.pid!, ...slurmSide });
      try {
        await waitRecorded(e2e, [...warm, ...ids], 600_000, agent.logs);
      } finally {
        sampler.stop();
        await agent.stop();
      }
      const w = await window(e2e, ids);
      const ourCpu = sampler.between(w.firstLease, w.lastSubmitted);
      const agentRate = n / ((w.lastSubmitted - w.firstLease) / 1000);
      for (const id of await slurmIds(e2e, [...warm, ...ids])) {
        created.add(id);
      }
      await cancelIds(env, created);

      const scripts = ids.map((id) => join(root, "alice", id, JOB_FILES.script));
      opts.log(`restd: slurmrestd alone, ${n} posts, concurrency ${c}`);
      const rawCpu = cpuWindow(slurmSide);
      const raw = await postScripts(client, scripts, c);
      const aloneCpu = rawCpu.end();
      for (const id of raw.ids) {
        created.add(id);
      }
      await cancelIds(env, created);
      const rawRate = n / raw.seconds;
      rows.push({
        section: SECTION,
        metric: `submit rate, concurrency ${c} (agent over REST vs slurmrestd alone)${layout === "split" ? ", CPUs split" : ""}`,
        ours: round(agentRate),
        floor: round(rawRate),
        unit: "jobs/s",
        ratio: round(agentRate / rawRate),
        n,
        target: "≥ 0.9",
      });
      // Per job, the CPU each side spent: ours is the agent and this process (the gateway, with the
      // bench's own polling); Slurm's is slurmrestd, slurmctld and munged, alone and beside us.
      const perJob = (ms: number) => round(ms / n);
      const slurmMs = (w: typeof aloneCpu) => w.ms.slurmrestd! + w.ms.slurmctld! + w.ms.munged!;
      const ours = perJob(ourCpu.ms.agent! + ourCpu.ms.self!);
      const slurmAlone = perJob(slurmMs(aloneCpu));
      rows.push({
        section: SECTION,
        metric: `CPU per job, concurrency ${c}: agent + gateway (ours) vs slurmrestd + slurmctld + munged alone`,
        ours,
        floor: slurmAlone,
        unit: "ms",
        ratio: round(ours / slurmAlone),
        n,
        target: "context",
      });
      notes.push({
        concurrency: c,
        cpus: layout,
        agentRate,
        rawRate,
        load1: load,
        cpuMsPerJob: {
          agent: perJob(ourCpu.ms.agent!),
          gatewayProcess: perJob(ourCpu.ms.self!),
          slurmSideBesideAgent: perJob(slurmMs(ourCpu)),
          slurmSideAlone: slurmAlone,
          restClientAlone: perJob(aloneCpu.ms.self!),
        },
        machineBusy: { agentWindow: round(ourCpu.busyShare), slurmrestdAlone: round(aloneCpu.busyShare) },
        // Were the machine's CPUs the only limit, the agent would reach this share of slurmrestd's
        // rate: all the CPU a job costs with the bare client, over all it costs through us.
        cpuBoundRatio: round(
          (slurmMs(aloneCpu) + aloneCpu.ms.self!) / (slurmMs(ourCpu) + ourCpu.ms.agent! + ourCpu.ms.self!),
        ),
      });
    }
    opts.log(`restd: bash sbatch loop, ${n} scripts (context)`);
    const scripts = (await allIds(e2e)).slice(0, n).map((id) => join(root, "alice", id, JOB_FILES.script));
    const bash = await rawSbatchLoop(env, scripts);
    for (const id of bash.ids) {
      created.add(id);
    }
    rows.push({
      section: SECTION,
      metric: "bash sbatch loop over the same scripts (context)",
      ours: round(n / bash.seconds),
      floor: null,
      unit: "jobs/s",
      ratio: null,
      n,
    });
    opts.log(`restd: ${JSON.stringify(notes)} load ${loadavg().map(round).join(" ")}`);
    return rows;
  } finally {
    client.close();
    if (layout === "split") {
      pinTo(`0-${cpuCount() - 1}`, [process.pid, slurmSide.slurmctld, slurmSide.munged]);
    }
    await cancelIds(env, [...created, ...(await slurmIds(e2e, await allIds(e2e)))]);
    await e2e.close();
    await daemon.stop();
    rmSync(root, { recursive: true, force: true }); // 800+ job directories of ~25 KB each, every run
  }
}

/** `shared` (the default) or `split` (see the file's comment); split needs two CPUs or more. */
function cpuLayout(value: string | undefined): "shared" | "split" {
  if (value === undefined || value === "" || value === "shared") {
    return "shared";
  }
  if (value !== "split") {
    throw new Error(`BENCH_RESTD_CPUS=${value}: shared or split`);
  }
  if (cpuCount() < 2) {
    throw new Error("BENCH_RESTD_CPUS=split needs at least two CPUs");
  }
  return "split";
}

/** The machine's CPUs (not this process's: once pinned, availableParallelism() says 1). */
const cpuCount = () => cpus().length;

/** Sets the CPUs every thread of each process may run on (taskset; threads made later inherit it). */
function pinTo(cpuList: string, pids: number[]) {
  for (const pid of pids) {
    execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", cpuList, String(pid)], { stdio: "ignore" });
  }
}

/** Posts each script as the agent would, `parallel` in flight; wall time of the whole. */
async function postScripts(
  client: RestClient,
  scripts: string[],
  parallel: number,
): Promise<{ ids: string[]; seconds: number }> {
  const bodies = scripts.map((s) => buildRestSubmission(readFileSync(s, "utf8"), ["--export=NONE"]));
  const ids: string[] = [];
  let next = 0;
  const t = performance.now();
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      const res = await client.request("POST", `${REST_API}/job/submit`, body);
      const id = (res.body as { job_id?: number }).job_id;
      if (typeof id !== "number") {
        throw new Error(`slurmrestd refused a bench job: ${JSON.stringify(res.body).slice(0, 300)}`);
      }
      ids.push(String(id));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { ids, seconds: (performance.now() - t) / 1000 };
}

async function postMany(e2e: E2E, count: number, from: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await fetch(`${e2e.url}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
        body: JSON.stringify({
          name: `restd-${from + i}`,
          cluster: "alpha",
          command: ["true"],
          extraSbatchArgs: [HOLD_ARG],
        }),
      });
      const body = (await res.json()) as { id?: string };
      if (res.status !== 201 || !body.id) {
        throw new Error(`submit → ${res.status} ${JSON.stringify(body)}`);
      }
      ids[i] = body.id;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return ids;
}

async function waitRecorded(e2e: E2E, ids: string[], timeoutMs: number, logs: () => string) {
  const deadline = Date.now() + timeoutMs;
  const marks = ids.map(() => "?").join(",");
  for (;;) {
    const rs = await e2e.gw.db.client.execute({
      sql: `SELECT SUM(CASE WHEN slurm_job_id IS NOT NULL THEN 1 ELSE 0 END) AS done,
                   SUM(CASE WHEN state IN ('rejected','failed','lost','cancelled') THEN 1 ELSE 0 END) AS bad,
                   MAX(reason) AS reason
            FROM jobs WHERE id IN (${marks})`,
      args: ids,
    });
    const row = rs.rows[0]!;
    if (Number(row.bad) > 0) {
      throw new Error(`${row.bad} bench jobs ended early: ${row.reason}\n${logs()}`);
    }
    if (Number(row.done) === ids.length) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`only ${row.done}/${ids.length} jobs reached Slurm\n${logs()}`);
    }
    // Seldom: the bench shares the CPUs it measures, and the rate comes from event times, not from this poll.
    await sleep(250);
  }
}

async function window(e2e: E2E, ids: string[]) {
  const marks = ids.map(() => "?").join(",");
  const rs = await e2e.gw.db.client.execute({
    sql: `SELECT MIN(CASE WHEN state = 'leased' THEN at END) AS first_lease,
                 MAX(CASE WHEN state = 'submitted' THEN at END) AS last_sub
          FROM job_events WHERE job_id IN (${marks})`,
    args: ids,
  });
  return { firstLease: Number(rs.rows[0]!.first_lease), lastSubmitted: Number(rs.rows[0]!.last_sub) };
}

async function slurmIds(e2e: E2E, ids: string[]): Promise<string[]> {
  if (ids.length === 0) {
    return [];
  }
  const rs = await e2e.gw.db.client.execute({
    sql: `SELECT slurm_job_id FROM jobs WHERE slurm_job_id IS NOT NULL AND id IN (${ids.map(() => "?").join(",")})`,
    args: ids,
  });
  return rs.rows.map((r) => String(r.slurm_job_id));
}

async function allIds(e2e: E2E): Promise<string[]> {
  const rs = await e2e.gw.db.client.execute("SELECT id FROM jobs ORDER BY created_at");
  return rs.rows.map((r) => String(r.id));
}

/** slurmctld's pid (its pid file, from slurm.conf) and munged's: the rest of Slurm's side of a submission. */
function slurmDaemonPids(slurmConf: string): { slurmctld: number; munged: number } {
  const pidFile = /^SlurmctldPidFile=(.+)$/m.exec(readFileSync(slurmConf, "utf8"))?.[1];
  if (!pidFile) {
    throw new Error(`${slurmConf} names no SlurmctldPidFile`);
  }
  const munged = execFileSync("pgrep", ["-x", "-o", "munged"], { encoding: "utf8" }).trim();
  return { slurmctld: Number(readFileSync(pidFile.trim(), "utf8").trim()), munged: Number(munged) };
}
