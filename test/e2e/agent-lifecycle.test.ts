/**
 * An agent's own life on real Slurm: stopped with SIGTERM or SIGINT it says goodbye and its
 * cluster shows down at once, routing says why, and the jobs it left running are tracked by the
 * restarted agent and complete exactly once. An agent whose token is not its cluster's agent token
 * refuses to start with one line on stderr.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, revokeToken } from "../../gateway/store/tokens.ts";
import type { Job } from "../../schemas/index.ts";
import { type E2E, REPO, slurmJobsTagged, startE2E } from "./harness.ts";

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "20" });
});

afterAll(async () => {
  await e2e?.close();
});

type ClusterItem = { name: string; alive: boolean; stoppedAt: string | null };

/** Once more on a network failure: a keep-alive socket the server closed at that moment fails once. */
const once = <T>(fn: () => Promise<T>) => fn().catch(() => fn());

async function cluster(name: string): Promise<ClusterItem> {
  const res = await once(() => fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.admin}` } }));
  const { items } = (await res.json()) as { items: ClusterItem[] };
  return items.find((c) => c.name === name)!;
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });

/** The agent binary as an operator runs it, stdout and stderr kept apart. */
function runAgent(env: Record<string, string>, args: string[] = []) {
  const nodeBin = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  const child = spawn(nodeBin, ["--import", "tsx", join(REPO, "agent/main.ts"), ...args], {
    cwd: REPO,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return exited(child).then(({ code }) => {
    clearTimeout(timer);
    return { code, stdout, stderr };
  });
}

describe("an agent stopped with SIGTERM", () => {
  it("says goodbye: its cluster is down at once, routing says why, and a restart finishes its jobs exactly once", async () => {
    const first = e2e.startAgent("alpha");
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const jobs = await Promise.all(
      [0, 1].map((i) =>
        e2e.submit(e2e.alice, { name: `held-${i}`, cluster: "alpha", command: ["bash", "-c", "sleep 12; echo done"] }),
      ),
    );
    const running = await Promise.all(jobs.map((j) => e2e.waitFor(e2e.alice, j.id, (x) => x.state === "running")));

    const stoppedAt = Date.now();
    first.child.kill("SIGTERM");
    expect(await exited(first.child)).toEqual({ code: 0, signal: null });
    expect(first.logs()).toMatch(/said goodbye to the gateway/);
    // It said at start what starts its commands: posix_spawn here, where /usr/bin/python3 is.
    expect(first.logs()).toMatch(/"agent started".*"spawner":"python"/);
    const down = await cluster("alpha");
    expect(down.alive).toBe(false);
    expect(Date.parse(down.stoppedAt!)).toBeGreaterThanOrEqual(stoppedAt - 1_000);

    // Routing: a job only alpha can run is refused naming the stop; a job pinned there waits.
    const res = await fetch(`${e2e.url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "a100",
        partition: "gpu",
        resources: { gpus: { count: 1, type: "a100" } },
        command: ["true"],
      }),
    });
    expect(res.status).toBe(422);
    const problem = (await res.json()) as { field: string; detail: string };
    expect(problem.field).toBe("cluster");
    expect(problem.detail).toContain(`the agent of alpha stopped at ${down.stoppedAt}; no live agent`);
    const pinned = await e2e.submit(e2e.alice, { name: "waits", cluster: "alpha", command: ["echo", "back"] });
    expect((await e2e.job(e2e.alice, pinned.id)).reason).toContain(`the agent of alpha stopped at ${down.stoppedAt}`);

    // The jobs it left in Slurm are not given up meanwhile.
    for (const job of running) {
      expect((await e2e.job(e2e.alice, job.id)).state).toBe("running");
    }

    const second = e2e.startAgent("alpha", { SLURMGATE_STATE_FILE: first.stateFile });
    const done = await Promise.all([...running, pinned].map((job) => e2e.waitTerminal(e2e.alice, job.id, 120_000)));
    expect(await cluster("alpha")).toMatchObject({ alive: true, stoppedAt: null });
    await second.stop();
    expect(done.map((j) => j.state)).toEqual(["completed", "completed", "completed"]);
    for (const [i, job] of running.entries()) {
      expect(done[i]!.slurmJobId).toBe(job.slurmJobId);
      expect(await e2e.logs(e2e.alice, job.id)).toBe("done\n");
    }
    for (const job of done) {
      expect(slurmJobsTagged("alpha", job.id)).toEqual([job.slurmJobId]);
    }
  });

  it("stopped (SIGINT) in the middle of a burst of submissions: every job still runs exactly once", async () => {
    const jobs: Job[] = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        e2e.submit(e2e.alice, { name: `burst-${i}`, cluster: "alpha", command: ["true"] }),
      ),
    );
    // Slow submissions (2/s), so the signal lands while some are submitted and some are not.
    const first = e2e.startAgent("alpha", { SLURMGATE_SUBMITS_PER_SECOND: "2" });
    await e2e.waitFor(e2e.alice, jobs[0]!.id, (j) => j.slurmJobId !== null, 60_000);
    first.child.kill("SIGINT");
    expect((await exited(first.child)).code).toBe(0);
    expect((await cluster("alpha")).alive).toBe(false);
    const second = e2e.startAgent("alpha", { SLURMGATE_STATE_FILE: first.stateFile });
    const done = await Promise.all(jobs.map((job) => e2e.waitTerminal(e2e.alice, job.id, 150_000)));
    await second.stop();
    expect(done.map((j) => j.state)).toEqual(jobs.map(() => "completed"));
    for (const job of done) {
      expect(slurmJobsTagged("alpha", job.id)).toEqual([job.slurmJobId]);
    }
  });
});

describe("an agent whose token is not its cluster's agent token", () => {
  const refusals = async () => {
    const now = Date.now();
    const revoked = await createToken(e2e.gw.db, { kind: "agent", cluster: "alpha" }, now);
    await revokeToken(e2e.gw.db, revoked.id, now);
    // Tokens of other kinds that carry the agent prefix, so only the gateway can tell what they are.
    const disguised = (kind: "user" | "admin", user: string) =>
      createToken(e2e.gw.db, { kind, user, secret: `sga_${kind}${"x".repeat(40)}${now}` }, now);
    return [
      {
        token: e2e.agentTokens.beta,
        line: /^slurmgate agent: SLURMGATE_AGENT_TOKEN is bound to cluster beta, not SLURMGATE_CLUSTER=alpha; create one with: slurmgate token create --cluster alpha$/,
      },
      {
        token: (await disguised("user", "alice")).token,
        line: /^slurmgate agent: SLURMGATE_AGENT_TOKEN is a user token, not an agent token; create one with: /,
      },
      {
        token: (await disguised("admin", "root")).token,
        line: /^slurmgate agent: SLURMGATE_AGENT_TOKEN is an admin token, not an agent token; /,
      },
      {
        token: revoked.token,
        line: /^slurmgate agent: the gateway refused SLURMGATE_AGENT_TOKEN \(token revoked or expired\): /,
      },
      // A plain user token is refused before the gateway is asked, by its prefix.
      { token: e2e.alice, line: /^slurmgate agent: invalid SLURMGATE_AGENT_TOKEN: an agent token \(sga_…\)/ },
    ];
  };

  it("refuses to start, as a daemon and with --once: one line on stderr, exit ≠ 0, nothing leased", async () => {
    const key = { "idempotency-key": `for-beta-${Date.now()}` }; // safe to send twice
    const betaJob = await once(() =>
      e2e.submit(e2e.alice, { name: "for-beta", cluster: "beta", command: ["true"] }, key),
    );
    for (const { token, line } of await refusals()) {
      for (const args of [[], ["--once"]]) {
        const run = await runAgent(e2e.agentEnv("alpha", { SLURMGATE_AGENT_TOKEN: token }), args);
        expect(run.code, `${args} ${run.stderr}`).not.toBe(0);
        expect(run.stdout).toBe("");
        expect(run.stderr.endsWith("\n")).toBe(true);
        expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
        expect(run.stderr.trimEnd()).toMatch(line);
      }
    }
    // beta's job was never leased by alpha's agent, and beta did not come alive through it.
    expect(await e2e.job(e2e.alice, betaJob.id)).toMatchObject({ state: "queued", slurmJobId: null });
    expect((await cluster("beta")).alive).toBe(false);
  });

  it("the right token still starts (control)", async () => {
    const run = await runAgent(e2e.agentEnv("alpha"), ["--once"]);
    expect(run.code).toBe(0);
  });
});
