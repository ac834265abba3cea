/**
 * A real QOS submit limit is back-pressure, not failure (issue #12), on gamma: a small third cluster
 * (test/slurm/gamma.sh) that enforces associations,limits,qos and puts the agent's user (root) in a QOS
 * with MaxSubmitJobsPerUser=2. alpha and beta keep AccountingStorageEnforce=none for every other test.
 * Real slurmctld, real sbatch, real gateway over HTTP, real agent: nothing imitates Slurm here.
 */
import { execFile } from "node:child_process";
import { chmodSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { batchLeases } from "../helpers/batch-leases.ts";
import { createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import type { AgentContext } from "../../agent/context.ts";
import type { GatewayApi } from "../../agent/gateway-api.ts";
import { createPacer } from "../../agent/pacer.ts";
import { requeueAfterSeconds } from "../../agent/requeue-wait.ts";
import { submitBatch } from "../../agent/submit-batch.ts";
import { LIVE_STATES, type Job, type JobEvent, type SweepCreated, type SweepDetail } from "../../schemas/index.ts";
import { type RestDaemon, startSlurmrestd } from "../helpers/slurmrestd.ts";
import { type AgentProcess, type E2E, slurm, slurmJobsTagged, startE2E, startGamma, stopGamma } from "./harness.ts";
import { type PosixUser, ensurePosixUser, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const run = promisify(execFile);
let e2e: E2E;
let gamma: ReturnType<typeof startGamma>;
/** slurmrestd runs as this user (it refuses root); gamma.sh puts it in the same QOS as root. */
let restUser: PosixUser;

beforeAll(async () => {
  restUser = ensurePosixUser("sg-alice");
  gamma = startGamma();
  e2e = await startE2E({}, {}, { gamma: true });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  stopGamma();
});

/**
 * gamma's QOS counts every job of root's, so a test that failed half-way must not hand its agents,
 * its waiting jobs or its Slurm jobs to the next one: stop every agent it started (the harness keeps
 * them until the file ends), cancel its live gamma jobs, and empty gamma's queue.
 */
const startedAgents: { stop: () => Promise<void> }[] = [];
const startAgent = (env: Record<string, string>) => {
  const agent = e2e.startAgent("gamma", env);
  startedAgents.push(agent);
  return agent;
};
afterEach(async () => {
  await Promise.all(startedAgents.splice(0).map((a) => a.stop()));
  for (const state of LIVE_STATES) {
    const page = await call<{ items: Job[] }>("GET", `/v1/jobs?cluster=gamma&state=${state}&limit=500`);
    for (const j of page.items) {
      await call("POST", `/v1/jobs/${j.id}/cancel`).catch(() => undefined);
    }
  }
  slurm("gamma", "scancel", ["-u", "root"]);
  slurm("gamma", "scancel", ["-u", restUser.name]);
});

const job = (name: string, seconds: number) => ({
  name,
  cluster: "gamma",
  partition: "cpu",
  command: ["sleep", String(seconds)],
});

/** The slurmgate jobs gamma's controller holds right now (pending or running). */
async function inSlurm(): Promise<string[]> {
  const { stdout } = await run("squeue", ["-h", "-o", "%i|%T|%k"], {
    env: { ...process.env, SLURM_CONF: gamma.slurmConf },
  });
  return stdout.split("\n").filter((line) => line.includes("slurmgate:"));
}

/** Samples squeue every 300 ms until stopped; returns the most jobs Slurm held, and ran, at once. */
function sampleSqueue() {
  let most = 0;
  let mostRunning = 0;
  let samples = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      const held = await inSlurm().catch(() => null);
      if (held) {
        most = Math.max(most, held.length);
        mostRunning = Math.max(mostRunning, held.filter((line) => line.split("|")[1] === "RUNNING").length);
        samples++;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      return { most, mostRunning, samples };
    },
  };
}

async function events(id: string): Promise<JobEvent[]> {
  const res = await fetch(`${e2e.url}/v1/jobs/${id}/events?after=0`, {
    headers: { authorization: `Bearer ${e2e.alice}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: JobEvent[] }).events;
}

/**
 * The agents here wait 10 s for room instead of the default 60 (SLURMGATE_NO_ROOM_WAIT_SECONDS):
 * gamma's jobs end in seconds, and every test below waits for room at least once.
 */
const NO_ROOM_WAIT = { SLURMGATE_NO_ROOM_WAIT_SECONDS: "10" };

/**
 * Each back-pressure give-back in a job's history held it for the agent's configured wait
 * (agent/requeue-wait.ts) before the gateway offered it again; returns how many give-backs there were.
 */
function expectHeldForTheRule(history: JobEvent[]): number {
  const wait = requeueAfterSeconds("no-room", parseAgentConfig(e2e.agentEnv("gamma", NO_ROOM_WAIT))) * 1_000;
  let giveBacks = 0;
  for (const [i, e] of history.entries()) {
    if (e.state === "queued" && /^back-pressure:/.test(e.detail ?? "")) {
      giveBacks++;
      const next = history.slice(i + 1).find((x) => x.state === "leased");
      if (next) {
        expect(Date.parse(next.at) - Date.parse(e.at)).toBeGreaterThanOrEqual(wait - 1_000);
      }
    }
  }
  return giveBacks;
}

const heldBack = (job: Job) => job.state === "queued" && /QOSMaxSubmitJobPerUserLimit/.test(job.reason ?? "");

/** Root's jobs gamma's controller holds in any state (ended ones for MinJobAge, 300 s). */
const heldOfRoot = () => slurm("gamma", "squeue", ["-h", "--states=all", "-u", "root", "-o", "%i"]).trim();

// First in the file: the never-fits rule needs a controller that holds none of root's jobs, which
// a fresh gamma does (jobs an earlier run left are cancelled by gamma.sh and age out in MinJobAge).
describe("a job's own array larger than the QOS submit limit (MaxSubmitJobsPerUser=2)", () => {
  it("0-4 is refused for good, naming the limit, when Slurm holds none of the user's jobs; 0-1 completes; 0-4 waits while a job of the user is held", async () => {
    const deadline = Date.now() + 330_000;
    while (heldOfRoot() !== "") {
      expect(Date.now(), `gamma still holds root's jobs: ${heldOfRoot()}`).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 5_000));
    }
    const agent = startAgent(NO_ROOM_WAIT);
    await e2e.waitClustersAlive(60_000, ["gamma"]);
    const arrayJob = (name: string, indexes: string) => ({ ...job(name, 1), array: { indexes } });

    const tooBig = await e2e.submit(e2e.alice, arrayJob("qos-array-5", "0-4"));
    const refused = await e2e.waitTerminal(e2e.alice, tooBig.id, 60_000);
    expect(refused).toMatchObject({ state: "rejected", code: "slurm_qos_limit", slurmJobId: null });
    expect(refused.reason).toMatch(
      /^the job asks for 5 array tasks and Slurm's QOSMaxSubmitJobPerUserLimit refuses them all even with none of this user's jobs queued: .*\(QOSMaxSubmitJobPerUserLimit: Job violates accounting\/QOS policy/,
    );
    expect(refused.reason).not.toMatch(/%N throttle (may|can|will) help/);
    // GET /v1/jobs/{id} itself, not only the wait's view of it.
    const got = await call<Job>("GET", `/v1/jobs/${tooBig.id}`);
    expect(got.reason).toBe(refused.reason);
    expect(slurmJobsTagged("gamma", tooBig.id)).toHaveLength(0);

    const fits = await e2e.submit(e2e.alice, arrayJob("qos-array-2", "0-1"));
    expect((await e2e.waitTerminal(e2e.alice, fits.id, 120_000)).state).toBe("completed");

    // Worst timing: the ended 0-1 is still held (MinJobAge), so the limit may only be reached: wait.
    expect(heldOfRoot()).not.toBe("");
    const waits = await e2e.submit(e2e.alice, arrayJob("qos-array-5-again", "0-4"));
    const held = await e2e.waitFor(e2e.alice, waits.id, (x) => heldBack(x) || isEnded(x), 60_000);
    expect(held.state).toBe("queued");
    expect(held.code ?? null).toBeNull();
    await call("POST", `/v1/jobs/${waits.id}/cancel`);
    expect((await e2e.waitTerminal(e2e.alice, waits.id, 60_000)).state).toBe("cancelled");
    await agent.stop();
  }, 480_000);
});

const isEnded = (job: Job) => ["completed", "failed", "rejected", "cancelled", "timeout"].includes(job.state);

describe("the pacer bounds every part of a split array (SLURMGATE_SUBMITS_PER_SECOND)", () => {
  it("each sbatch of a 5-element array split by a real QOS refusal waits for its own slot", async () => {
    // --begin: held an hour ahead, the parts never run (they are cancelled below).
    const env = e2e.agentEnv("gamma", { SLURMGATE_ALLOWED_SBATCH_ARGS: "--begin" });
    const api = {
      me: async () => ({
        ok: true as const,
        value: { kind: "agent", cluster: "gamma", user: null, serverTime: new Date().toISOString() },
      }),
    } as unknown as GatewayApi;
    const agent = await createAgent(parseAgentConfig(env), env, { api, log: () => {} });
    // A fake clock that the pacer's sleep moves: each sbatch records the slot it went in at.
    let clock = 1_000_000;
    const rate = 2;
    const pacer = createPacer(
      { config: { ...agent.ctx.config, SLURMGATE_SUBMITS_PER_SECOND: rate }, now: () => clock } as AgentContext,
      async (ms) => {
        clock += ms;
      },
    );
    const calls: { at: number }[] = [];
    const real = agent.ctx.slurm;
    agent.ctx.slurm = {
      ...real,
      sbatch: (script, args) => {
        calls.push({ at: clock });
        return real.sbatch(script, args);
      },
    };
    const leases = batchLeases(5, { name: "paced", spec: { partition: "cpu" } });
    try {
      const results = await submitBatch(agent.ctx, leases, () => pacer.beforeSubmit());
      const submitted = results.filter((r) => r.kind === "submitted").length;
      // 5 and 3 refused, then parts of 2 and 1 (as room allows): every part was an sbatch of its own.
      expect(calls.length, JSON.stringify(results)).toBeGreaterThanOrEqual(3);
      expect(submitted).toBeGreaterThanOrEqual(1);
      expect(submitted).toBeLessThanOrEqual(gamma.submitLimit);
      // N calls take at least (N-1)/rate: consecutive ones are a slot (1/rate s) apart or more.
      for (let i = 1; i < calls.length; i++) {
        expect(calls[i]!.at - calls[i - 1]!.at, JSON.stringify(calls)).toBeGreaterThanOrEqual(1_000 / rate);
      }
      expect(calls.at(-1)!.at - calls[0]!.at).toBeGreaterThanOrEqual(((calls.length - 1) * 1_000) / rate);
    } finally {
      const arrays = slurm("gamma", "squeue", ["-h", "-o", "%F|%k"])
        .split("\n")
        .filter((line) => line.endsWith(`slurmgate:batch:${leases[0]!.batch!.id}`))
        .map((line) => line.split("|")[0]!);
      if (arrays.length > 0) {
        slurm("gamma", "scancel", [...new Set(arrays)]);
      }
      agent.stop();
    }
  }, 120_000);
});

describe("a real QOS submit limit (MaxSubmitJobsPerUser=2 on gamma)", () => {
  it("five jobs at once: at most two in Slurm, the rest wait with the QOS reason, all complete once each", async () => {
    expect(gamma.submitLimit).toBe(2);
    const agent = startAgent(NO_ROOM_WAIT);
    await e2e.waitClustersAlive(60_000, ["gamma"]);
    const sampler = sampleSqueue();
    const jobs = await Promise.all([1, 2, 3, 4, 5].map((n) => e2e.submit(e2e.alice, job(`qos-${n}`, 15))));

    // Three are held back by Slurm's own refusal, and say so while they wait.
    const waiting = await Promise.all(
      jobs.map((j) =>
        e2e
          .waitFor(e2e.alice, j.id, (x) => heldBack(x) || x.slurmJobId !== null, 60_000)
          .then((x) => (heldBack(x) ? x : null)),
      ),
    );
    const held = waiting.filter((x): x is Job => x !== null);
    expect(held.length).toBeGreaterThanOrEqual(3);
    for (const x of held) {
      expect(x.code ?? null).toBeNull();
      expect(x.reason).toMatch(
        /^Slurm's queue is full for this user \(QOSMaxSubmitJobPerUserLimit\): waiting \(QOSMaxSubmitJobPerUserLimit: Job violates accounting\/QOS policy/,
      );
    }

    // The back-off is 60 s per refusal; five 15 s jobs through a limit of two take three rounds.
    const ended = await Promise.all(jobs.map((j) => e2e.waitTerminal(e2e.alice, j.id, 240_000)));
    const { most, samples } = await sampler.stop();
    expect(samples).toBeGreaterThan(10);
    expect(most).toBeLessThanOrEqual(2);
    expect(most).toBe(2);
    for (const x of ended) {
      expect(x.state, x.reason ?? "").toBe("completed");
      expect(slurmJobsTagged("gamma", x.id)).toHaveLength(1);
      const history = await events(x.id);
      expect(history.filter((e) => e.state === "failed" || e.state === "rejected")).toEqual([]);
      expectHeldForTheRule(history);
    }
    // Each held-back job's history shows the QOS refusal as back-pressure, never as an end.
    for (const x of held) {
      const backPressure = (await events(x.id)).filter(
        (e) => e.state === "queued" && /^back-pressure:/.test(e.detail ?? ""),
      );
      expect(backPressure.length).toBeGreaterThanOrEqual(1);
      expect(backPressure[0]!.detail).toMatch(/QOSMaxSubmitJobPerUserLimit/);
    }
    expect(agent.child.exitCode).toBeNull();
    await agent.stop();
  }, 330_000);

  it("the limit lifted while jobs wait: the rest go in without restarting the agent", async () => {
    const agent = startAgent(NO_ROOM_WAIT);
    await e2e.waitClustersAlive(60_000, ["gamma"]);
    const pid = agent.child.pid;
    const jobs = await Promise.all([1, 2, 3, 4].map((n) => e2e.submit(e2e.alice, job(`qos-lift-${n}`, 300))));
    const waiting = await Promise.all(
      jobs.map((j) =>
        e2e
          .waitFor(e2e.alice, j.id, (x) => heldBack(x) || x.slurmJobId !== null, 60_000)
          .then((x) => (heldBack(x) ? x : null)),
      ),
    );
    expect(waiting.filter(Boolean)).toHaveLength(2);
    expect(await inSlurm()).toHaveLength(2);

    // The site raises the limit; slurmdbd tells the running controller. Nothing else changes.
    slurm("gamma", "sacctmgr", ["-i", "modify", "qos", gamma.qos, "set", "MaxSubmitJobsPerUser=10"]);
    try {
      // The two that waited go in at their next offer (60 s back-off), while the first two still run.
      for (const j of jobs) {
        await e2e.waitFor(e2e.alice, j.id, (x) => x.slurmJobId !== null, 120_000);
      }
      expect(await inSlurm()).toHaveLength(4);
      expect(agent.child.exitCode).toBeNull();
      expect(agent.child.pid).toBe(pid);
      for (const j of jobs) {
        expect(slurmJobsTagged("gamma", j.id)).toHaveLength(1);
      }
    } finally {
      slurm("gamma", "sacctmgr", [
        "-i",
        "modify",
        "qos",
        gamma.qos,
        "set",
        `MaxSubmitJobsPerUser=${gamma.submitLimit}`,
      ]);
      await Promise.all(
        jobs.map((j) =>
          fetch(`${e2e.url}/v1/jobs/${j.id}/cancel`, {
            method: "POST",
            headers: { authorization: `Bearer ${e2e.alice}` },
          }),
        ),
      );
    }
    for (const j of jobs) {
      expect((await e2e.waitTerminal(e2e.alice, j.id, 60_000)).state).toBe("cancelled");
    }
    await agent.stop();
  }, 300_000);
});

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(e2e.url + path, {
    method,
    headers: { authorization: `Bearer ${e2e.alice}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`${method} ${path} → ${res.status}: ${text}`);
  }
  return JSON.parse(text) as T;
}

const sweep = (id: string) => call<SweepDetail>("GET", `/v1/sweeps/${id}?limit=100`);

/**
 * Every sweep-array task gamma has a record of (squeue and sacct), as `<array>_<index>`, once each.
 * sacct's window runs two hours ahead: it selects by eligible time, so a task held with a far
 * `--begin` and cancelled (as the pacer test's are) is listed from the start, not first when its
 * begin time passes, in the middle of a later test.
 */
function batchTasks(): Set<string> {
  const queue = slurm("gamma", "squeue", ["-h", "--states=all", "-r", "-o", "%i|%k"]);
  const acct = slurm("gamma", "sacct", [
    ...["-X", "-P", "-n", "-o", "JobID,Comment"],
    ...["--starttime=now-2hours", "--endtime=now+2hours"],
  ]);
  const out = new Set<string>();
  for (const line of `${queue}\n${acct}`.split("\n")) {
    const [id = "", comment = ""] = line.trim().split("|");
    const m = /^(\d+)_\[?([\d,-]+)(?:%\d+)?\]?$/.exec(id);
    if (!m || !comment.startsWith("slurmgate:batch:")) {
      continue;
    }
    for (const part of m[2]!.split(",")) {
      const [from, to = from] = part.split("-").map(Number);
      for (let t = from!; t <= to!; t++) {
        out.add(`${m[1]}_${t}`);
      }
    }
  }
  return out;
}

/**
 * Each element in Slurm exactly once: the array tasks that appeared on gamma since `before` are
 * exactly the elements' own, one each (gamma runs nothing but this file's jobs).
 */
function expectEachOnce(elements: SweepDetail["elements"], before: Set<string>) {
  const appeared = [...batchTasks()].filter((id) => !before.has(id)).sort();
  expect(appeared).toEqual(elements.map((e) => e.slurmJobId).sort());
  expect(new Set(appeared).size).toBe(elements.length);
}

async function sweepDone(id: string, timeoutMs: number): Promise<SweepDetail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await sweep(id);
    if (s.state !== "active") {
      return s;
    }
    if (Date.now() > deadline) {
      throw new Error(`sweep ${id} still active: ${JSON.stringify(s.counts)}`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

const exitOf = (agent: AgentProcess) =>
  new Promise<string | null>((resolve) => {
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) {
      resolve(agent.child.signalCode);
      return;
    }
    agent.child.once("exit", (_code, signal) => resolve(signal));
  });

const gammaSweep = (name: string, extra: Record<string, unknown> = {}) =>
  call<SweepCreated>("POST", "/v1/sweeps", {
    base: { name, cluster: "gamma", partition: "cpu", command: ["bash", "-c", 'sleep 4; echo "element $N"'] },
    grid: { N: [0, 1, 2, 3, 4] },
    ...extra,
  });

describe("a sweep larger than the QOS submit limit (one array of 5, MaxSubmitJobsPerUser=2)", () => {
  it("goes in part by part: every element once, never more than 2 in Slurm, the waiting ones show the QOS reason", async () => {
    const agent = startAgent(NO_ROOM_WAIT);
    await e2e.waitClustersAlive(60_000, ["gamma"]);
    const before = batchTasks();
    const sampler = sampleSqueue();
    const created = await gammaSweep("qos-sweep");
    // While some elements are in Slurm, the others wait, queued, under Slurm's own reason.
    const waiting = await (async () => {
      const deadline = Date.now() + 90_000;
      for (;;) {
        const els = (await sweep(created.id)).elements;
        const held = els.filter((e) => e.state === "queued" && /QOSMaxSubmitJobPerUserLimit/.test(e.reason ?? ""));
        if (held.length > 0 && els.some((e) => e.slurmJobId !== null)) {
          return held;
        }
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    for (const el of waiting) {
      expect(el.reason).toMatch(/^Slurm's queue is full for this user \(QOSMaxSubmitJobPerUserLimit\): waiting/);
    }
    const done = await sweepDone(created.id, 300_000);
    const { most, samples } = await sampler.stop();
    expect(done).toMatchObject({ state: "completed", counts: { completed: 5 } });
    expect(samples).toBeGreaterThan(10);
    expect(most).toBeLessThanOrEqual(2);
    const els = (await sweep(created.id)).elements;
    expectEachOnce(els, before);
    let giveBacks = 0;
    for (const [i, el] of els.entries()) {
      expect(await e2e.logs(e2e.alice, el.jobId)).toBe(`element ${i}\n`);
      const history = await events(el.jobId);
      expect(history.filter((e) => e.state === "failed" || e.state === "rejected")).toEqual([]);
      giveBacks += expectHeldForTheRule(history);
    }
    expect(giveBacks).toBeGreaterThanOrEqual(3);
    expect(agent.child.exitCode).toBeNull();
    await agent.stop();
  }, 360_000);

  it("agent SIGKILLed between two parts: after a restart no element is lost or doubled, and maxParallel holds across parts", async () => {
    const before = batchTasks();
    const created = await gammaSweep("qos-crash", { maxParallel: 1 });
    const sampler = sampleSqueue();
    const first = startAgent({ ...NO_ROOM_WAIT, SLURMGATE_TEST_CRASH_AT: "between-parts" });
    expect(await exitOf(first)).toBe("SIGKILL");
    // The first part is in Slurm; the rest were recorded "submitting" and never sent.
    const after = (await sweep(created.id)).elements;
    expect(after.filter((e) => e.slurmJobId !== null).length).toBeLessThanOrEqual(2);
    const second = startAgent({ ...NO_ROOM_WAIT, SLURMGATE_STATE_FILE: first.stateFile });
    const done = await sweepDone(created.id, 300_000);
    const { most, mostRunning } = await sampler.stop();
    expect(done).toMatchObject({ state: "completed", counts: { completed: 5 } });
    expect(most).toBeLessThanOrEqual(2);
    // maxParallel 1 is the batch's, not each part's: never two elements running at once.
    expect(mostRunning).toBe(1);
    const els = (await sweep(created.id)).elements;
    expectEachOnce(els, before);
    for (const [i, el] of els.entries()) {
      expect(await e2e.logs(e2e.alice, el.jobId)).toBe(`element ${i}\n`);
    }
    await second.stop();
  }, 360_000);
});

/**
 * The REST backend (SLURMGATE_SLURMRESTD) under the same limit: slurmrestd 22.05 answers a submit
 * limit with Slurm's error text only ("Job violates accounting/QOS policy (job submit limit, …)",
 * error_code 2050), without the QOSMaxSubmitJobPerUserLimit line sbatch prints. It is still
 * back-pressure naming a submit limit, and an array is still split; it is never refused for good,
 * since the answer cannot tell a per-user limit from a group one.
 */
describe("a sweep larger than the QOS submit limit through slurmrestd", () => {
  let daemon: RestDaemon;
  beforeAll(async () => {
    daemon = await startSlurmrestd({ slurmConf: gamma.slurmConf, user: restUser });
  }, 60_000);
  afterAll(async () => {
    await daemon?.stop();
  });

  it("every element completes once, never more than 2 in Slurm, the waiting ones show a submit limit", async () => {
    const root = varTmpDir("sg-qos-restd-");
    chmodSync(root, 0o1777);
    const agent = spawnAgentAs(
      restUser,
      e2e.agentEnv("gamma", {
        ...NO_ROOM_WAIT,
        SLURMGATE_SHARED_ROOTS: root,
        SLURMGATE_STATE_FILE: `/home/${restUser.name}/agent-qos-restd-${Date.now()}.json`,
        SLURMGATE_SLURMRESTD: daemon.target,
        SLURMGATE_SLURMRESTD_USER: restUser.name,
      }),
    );
    try {
      // Not one of the harness's agents: wait for gamma's inventory, or the agent's end, here.
      for (const deadline = Date.now() + 60_000; ; ) {
        const { items } = await call<{ items: { name: string; alive: boolean; inventory: unknown }[] }>(
          "GET",
          "/v1/clusters",
        );
        if (items.some((c) => c.name === "gamma" && c.alive && c.inventory)) {
          break;
        }
        expect(agent.child.exitCode, agent.logs()).toBeNull();
        expect(Date.now(), agent.logs()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 200));
      }
      const before = batchTasks();
      const sampler = sampleSqueue();
      const created = await gammaSweep("qos-rest-sweep");
      const waiting = await (async () => {
        const deadline = Date.now() + 90_000;
        for (;;) {
          const els = (await sweep(created.id)).elements;
          const held = els.filter((e) => e.state === "queued" && /submit limit|MaxSubmitJobs/.test(e.reason ?? ""));
          if (held.length > 0 && els.some((e) => e.slurmJobId !== null)) {
            return held;
          }
          expect(Date.now(), agent.logs().slice(-2_000)).toBeLessThan(deadline);
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      for (const el of waiting) {
        expect(el.reason).toMatch(
          /^Slurm's queue is full for this user \(MaxSubmitJobs of a QOS or association\): waiting \(Job violates accounting\/QOS policy \(job submit limit/,
        );
      }
      const done = await sweepDone(created.id, 300_000);
      const { most, samples } = await sampler.stop();
      expect(done, agent.logs().slice(-2_000)).toMatchObject({ state: "completed", counts: { completed: 5 } });
      expect(samples).toBeGreaterThan(10);
      expect(most).toBeLessThanOrEqual(2);
      const els = (await sweep(created.id)).elements;
      expectEachOnce(els, before);
      for (const [i, el] of els.entries()) {
        expect(await e2e.logs(e2e.alice, el.jobId)).toBe(`element ${i}\n`);
        const history = await events(el.jobId);
        expect(history.filter((e) => e.state === "failed" || e.state === "rejected")).toEqual([]);
      }
      // The refusals went through slurmrestd, not sbatch.
      expect(daemon.logs()).toMatch(/POST \/slurm\/v0\.0\.38\/job\/submit/);
      expect(agent.child.exitCode).toBeNull();
    } finally {
      await agent.stop();
    }
  }, 420_000);
});
