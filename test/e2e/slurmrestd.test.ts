/**
 * The agent's REST backend on the real cluster alpha: a real slurmrestd (rest_auth/local, unix
 * socket) run as sg-alice, and an agent run as sg-alice submitting, tracking and cancelling through
 * it. Jobs end in the right state with the right exit code, a sweep goes in as one array, and the
 * exactly-once tag holds when the answer to a submission is lost, when the agent is SIGKILLed right
 * after it, and while the daemon is down. No slurmrestd on the machine is a failure, not a skip.
 */
import { chmodSync } from "node:fs";
import { type IncomingMessage, type Server, createServer, request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SweepCreated } from "../../schemas/index.ts";
import { type RestDaemon, startSlurmrestd } from "../helpers/slurmrestd.ts";
import { type E2E, slurmClusters, slurmJobsTagged, startE2E } from "./harness.ts";
import { type PosixUser, type UserAgent, ensurePosixUser, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

let e2e: E2E;
let alice: PosixUser;
let daemon: RestDaemon;
let root: string;
const agents: UserAgent[] = [];

beforeAll(async () => {
  alice = ensurePosixUser("sg-alice");
  daemon = await startSlurmrestd({ slurmConf: slurmClusters().alpha.slurmConf, user: alice });
  e2e = await startE2E({ SLURMGATE_LEASE_SECONDS: "10" });
  root = varTmpDir("sg-restd-");
  chmodSync(root, 0o1777);
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await daemon?.stop();
  await e2e?.close();
});

/** An agent as sg-alice on the REST backend at `target`. */
function startAgent(target: string, env: Record<string, string> = {}): UserAgent {
  const agent = spawnAgentAs(
    alice,
    e2e.agentEnv("alpha", {
      SLURMGATE_SHARED_ROOTS: root,
      SLURMGATE_STATE_FILE: `/home/${alice.name}/agent-restd-${Date.now()}-${agents.length}.json`,
      SLURMGATE_SLURMRESTD: target,
      SLURMGATE_SLURMRESTD_USER: alice.name,
      SLURMGATE_COMMAND_TIMEOUT_SECONDS: "5",
      ...env,
    }),
  );
  agents.push(agent);
  return agent;
}

const exitOf = (child: import("node:child_process").ChildProcess) =>
  new Promise<string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.signalCode);
      return;
    }
    child.once("exit", (_code, signal) => resolve(signal));
  });

/** Submissions the daemon received since `from` (its log lines). */
const submitsIn = (logs: string) => logs.match(/POST \/slurm\/v0\.0\.38\/job\/submit/g)?.length ?? 0;

describe("jobs through slurmrestd", () => {
  let agent: UserAgent;
  beforeAll(() => {
    agent = startAgent(daemon.target);
  });
  afterAll(async () => {
    await agent.stop();
  });

  it("a job completes with its output, a failing one reads failed with its exit code, each tagged once", async () => {
    const before = submitsIn(daemon.logs());
    const ok = await e2e.submit(e2e.alice, { name: "rest-ok", cluster: "alpha", command: ["bash", "-c", "echo done"] });
    const bad = await e2e.submit(e2e.alice, { name: "rest-bad", cluster: "alpha", command: ["bash", "-c", "exit 3"] });
    const [okDone, badDone] = await Promise.all([
      e2e.waitTerminal(e2e.alice, ok.id, 90_000),
      e2e.waitTerminal(e2e.alice, bad.id, 90_000),
    ]);
    expect(okDone.state).toBe("completed");
    expect(okDone.exitCode).toBe(0);
    expect(await e2e.logs(e2e.alice, ok.id)).toBe("done\n");
    expect(badDone.state).toBe("failed");
    expect(badDone.exitCode).toBe(3);
    // The tag reached Slurm's comment (22.05's REST ignores #SBATCH lines: only job properties count).
    expect(slurmJobsTagged("alpha", ok.id)).toEqual([okDone.slurmJobId]);
    expect(slurmJobsTagged("alpha", bad.id)).toEqual([badDone.slurmJobId]);
    expect(submitsIn(daemon.logs()) - before).toBe(2);
  });

  it("a sweep goes in as one array and every element completes", async () => {
    const res = await fetch(`${e2e.url}/v1/sweeps`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
      body: JSON.stringify({
        base: { name: "rest-sweep", cluster: "alpha", command: ["bash", "-c", 'echo "element $N"'] },
        grid: { N: [0, 1, 2, 3] },
        maxParallel: 2,
      }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as SweepCreated;
    const done = await Promise.all(created.jobIds.map((id) => e2e.waitTerminal(e2e.alice, id, 120_000)));
    expect(done.map((j) => j.state)).toEqual(["completed", "completed", "completed", "completed"]);
    const arrays = new Set(done.map((j) => j.slurmJobId?.split("_")[0]));
    expect(arrays.size).toBe(1);
    expect(done.map((j) => j.slurmJobId?.split("_")[1]).sort()).toEqual(["0", "1", "2", "3"]);
    expect(await Promise.all(created.jobIds.map((id) => e2e.logs(e2e.alice, id)))).toEqual(
      [0, 1, 2, 3].map((n) => `element ${n}\n`),
    );
  });

  it("a cancel reaches Slurm and the job reads cancelled", async () => {
    const job = await e2e.submit(e2e.alice, { name: "rest-sleeper", cluster: "alpha", command: ["sleep", "300"] });
    await e2e.waitFor(e2e.alice, job.id, (j) => j.state === "running", 90_000);
    const before = daemon.logs().match(/DELETE \/slurm\/v0\.0\.38\/job\//g)?.length ?? 0;
    const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    expect(res.status).toBe(202);
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    expect(done.state).toBe("cancelled");
    expect(daemon.logs().match(/DELETE \/slurm\/v0\.0\.38\/job\//g)?.length ?? 0).toBeGreaterThan(before);
  });
});

/**
 * A proxy in front of the daemon that passes the first submission through, then drops the
 * connection instead of answering: Slurm queued the job, the agent never heard its id.
 */
async function losingProxy(upstream: string): Promise<{ target: string; dropped: () => number; close: () => void }> {
  const socketPath = join(root, `proxy-${Date.now()}.sock`);
  let dropped = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const up = request(
        { socketPath: upstream, method: req.method, path: req.url, headers: req.headers },
        (answer: IncomingMessage) => {
          const parts: Buffer[] = [];
          answer.on("data", (c: Buffer) => parts.push(c));
          answer.on("end", () => {
            if (req.method === "POST" && dropped === 0) {
              dropped++;
              req.socket.destroy();
              return;
            }
            res.writeHead(answer.statusCode ?? 502, { "content-type": "application/json" });
            res.end(Buffer.concat(parts));
          });
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, () => resolve()));
  chmodSync(socketPath, 0o777);
  return { target: `unix:${socketPath}`, dropped: () => dropped, close: () => server.close() };
}

describe("exactly once through slurmrestd", () => {
  it("the answer to a submission is lost: the job is found by its tag, never submitted twice", async () => {
    const proxy = await losingProxy(daemon.socketPath);
    const agent = startAgent(proxy.target);
    const job = await e2e.submit(e2e.alice, {
      name: "rest-lost",
      cluster: "alpha",
      command: ["bash", "-c", "echo once"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    await agent.stop();
    proxy.close();
    expect(proxy.dropped()).toBe(1);
    expect(done.state).toBe("completed");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
  });

  it("the agent SIGKILLed right after the submission: the restarted agent adopts it by tag", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "rest-crash",
      cluster: "alpha",
      command: ["bash", "-c", "echo once"],
    });
    const stateFile = `/home/${alice.name}/agent-restd-crash-${Date.now()}.json`;
    const first = startAgent(daemon.target, {
      SLURMGATE_TEST_CRASH_AT: "after-sbatch",
      SLURMGATE_STATE_FILE: stateFile,
    });
    expect(await exitOf(first.child)).toBe("SIGKILL");
    const second = startAgent(daemon.target, { SLURMGATE_STATE_FILE: stateFile });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 90_000);
    await second.stop();
    expect(done.state).toBe("completed");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
  });

  it("the daemon down: the job waits (nothing lost), then goes in exactly once when it is back", async () => {
    await daemon.kill();
    const agent = startAgent(daemon.target);
    const job = await e2e.submit(e2e.alice, {
      name: "rest-down",
      cluster: "alpha",
      command: ["bash", "-c", "echo later"],
    });
    await new Promise((r) => setTimeout(r, 8_000));
    expect((await e2e.job(e2e.alice, job.id)).state).toMatch(/^(queued|leased)$/);
    expect(slurmJobsTagged("alpha", job.id)).toEqual([]);
    await daemon.restart();
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    await agent.stop();
    expect(done.state).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toBe("later\n");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([done.slurmJobId]);
  });
});
