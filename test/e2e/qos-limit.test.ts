/**
 * A real QOS submit limit is back-pressure, not failure (issue #12), on gamma: a small third cluster
 * (test/slurm/gamma.sh) that enforces associations,limits,qos and puts the agent's user (root) in a QOS
 * with MaxSubmitJobsPerUser=2. alpha and beta keep AccountingStorageEnforce=none for every other test.
 * Real slurmctld, real sbatch, real gateway over HTTP, real agent: nothing imitates Slurm here.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requeueAfterSeconds } from "../../agent/requeue-wait.ts";
import type { Job, JobEvent, SweepCreated, SweepDetail } from "../../schemas/index.ts";
import { type AgentProcess, type E2E, slurm, slurmJobsTagged, startE2E, startGamma, stopGamma } from "./harness.ts";

const run = promisify(execFile);
let e2e: E2E;
let gamma: ReturnType<typeof startGamma>;

beforeAll(async () => {
  gamma = startGamma();
  e2e = await startE2E({}, {}, { gamma: true });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  stopGamma();
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
 * Each back-pressure give-back in a job's history held it for the one requeue-wait rule's time
 * (agent/requeue-wait.ts) before the gateway offered it again; returns how many give-backs there were.
 */
function expectHeldForTheRule(history: JobEvent[]): number {
  const wait = requeueAfterSeconds("no-room") * 1_000;
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

describe("a real QOS submit limit (MaxSubmitJobsPerUser=2 on gamma)", () => {
  it("five jobs at once: at most two in Slurm, the rest wait with the QOS reason, all complete once each", async () => {
    expect(gamma.submitLimit).toBe(2);
    const agent = e2e.startAgent("gamma");
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
    const agent = e2e.startAgent("gamma");
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

/** Every sweep-array task gamma has a record of (squeue and sacct), as `<array>_<index>`, once each. */
function batchTasks(): Set<string> {
  const queue = slurm("gamma", "squeue", ["-h", "--states=all", "-r", "-o", "%i|%k"]);
  const acct = slurm("gamma", "sacct", ["-X", "-P", "-n", "-o", "JobID,Comment", "--starttime=now-2hours"]);
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
    const agent = e2e.startAgent("gamma");
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
    const first = e2e.startAgent("gamma", { SLURMGATE_TEST_CRASH_AT: "between-parts" });
    expect(await exitOf(first)).toBe("SIGKILL");
    // The first part is in Slurm; the rest were recorded "submitting" and never sent.
    const after = (await sweep(created.id)).elements;
    expect(after.filter((e) => e.slurmJobId !== null).length).toBeLessThanOrEqual(2);
    const second = e2e.startAgent("gamma", { SLURMGATE_STATE_FILE: first.stateFile });
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
