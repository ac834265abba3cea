/**
 * End-to-end harness on the two real local Slurm clusters brought up by test/slurm/cluster.sh:
 * a real gateway over HTTP (in this process, in-memory libSQL), real agents in child processes on
 * the machine's own Node 20, and helpers to watch jobs and ask Slurm directly.
 *
 * When Slurm is not up this throws: the suite fails, it never skips.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { Job, JobSpecInput } from "../../schemas/index.ts";
import { ClusterConfig, isTerminal } from "../../schemas/index.ts";
import { keepIdleConnections } from "../../gateway/keep-alive.ts";
import { createTestGateway, type TestGateway } from "../helpers/gateway.ts";

export const REPO = join(import.meta.dirname, "..", "..");
const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";

export type ClusterInfo = {
  slurmConf: string;
  /** The one node's name (both clusters run on this machine). */
  node: string;
  sharedRoot: string;
  partitions: string[];
  gres: string;
  cgroupMode: string;
};

/** alpha and beta are always up (cluster.sh); gamma only while a test that needs it runs (gamma.sh). */
export type ClusterName = "alpha" | "beta" | "gamma";

const GAMMA_SH = join(REPO, "test/slurm/gamma.sh");

/**
 * Brings up gamma, the small cluster with a real QOS submit limit (test/slurm/gamma.sh): its QOS is set
 * back to the limit and its old jobs are cancelled. Stop it with stopGamma() when done.
 */
export function startGamma(): ClusterInfo & { qos: string; submitLimit: number } {
  execFileSync("bash", [GAMMA_SH, "up"], { stdio: ["ignore", "inherit", "inherit"] });
  return gammaInfo();
}

export function stopGamma(): void {
  execFileSync("bash", [GAMMA_SH, "down"], { stdio: ["ignore", "inherit", "inherit"] });
}

let gamma: (ClusterInfo & { qos: string; submitLimit: number }) | undefined;
function gammaInfo() {
  gamma ??= JSON.parse(execFileSync("bash", [GAMMA_SH, "json"], { encoding: "utf8" }));
  return gamma!;
}

const clusterInfo = (cluster: ClusterName): ClusterInfo =>
  cluster === "gamma" ? gammaInfo() : slurmClusters()[cluster];

export function slurmClusters(): Record<"alpha" | "beta", ClusterInfo> {
  const file = join(TEST_DIR, "clusters.json");
  if (!existsSync(file)) {
    throw new Error(`Slurm test clusters are not up (${file} missing): run 'bash test/slurm/cluster.sh up' as root`);
  }
  return JSON.parse(readFileSync(file, "utf8"));
}

/** Runs a Slurm command against one cluster and returns stdout. */
export function slurm(cluster: ClusterName, cmd: string, args: string[]): string {
  const info = clusterInfo(cluster);
  return execFileSync(cmd, args, {
    env: { ...process.env, SLURM_CONF: info.slurmConf, TZ: "UTC", LC_ALL: "C" },
    encoding: "utf8",
  });
}

/**
 * Slurm jobs whose comment is the slurmgate tag of this job, from squeue (what the controller still
 * holds) and sacct (what accounting recorded; it may lag a few seconds behind) together.
 */
export function slurmJobsTagged(cluster: ClusterName, jobId: string): string[] {
  const queue = slurm(cluster, "squeue", ["-h", "--states=all", "-o", "%i|%k"]);
  const acct = slurm(cluster, "sacct", ["-X", "-P", "-n", "-o", "JobID,Comment", "--starttime=now-2hours"]);
  const ids = `${queue}\n${acct}`
    .split("\n")
    .filter((line) => line.includes(`slurmgate:${jobId}:`))
    .map((line) => line.split("|")[0]!.trim());
  return [...new Set(ids)].sort();
}

type ClusterConfigInput = import("zod").input<typeof import("../../schemas/index.ts").ClusterConfig>;

const normalise = (extras: ClusterExtras | undefined) => {
  const parsed = ClusterConfig.parse({ name: "x", sharedRoots: ["/x"], ...extras });
  return { allowedSbatchArgs: parsed.allowedSbatchArgs, profiles: parsed.profiles };
};

/**
 * The variables that put an agent in SSH mode against the loopback sshd of test/ssh/sshd.sh
 * (started here when it is not up): pass them to startAgent / runAgentOnce.
 */
export function sshAgentEnv(): Record<string, string> {
  const file = join(TEST_DIR, "ssh", "ssh.json");
  if (!existsSync(file)) {
    execFileSync("bash", [join(REPO, "test/ssh/sshd.sh"), "up"], { stdio: "inherit" });
  }
  const info = JSON.parse(readFileSync(file, "utf8")) as {
    host: string;
    port: number;
    user: string;
    key: string;
    hostKey: string;
  };
  return {
    SLURMGATE_SSH_HOST: info.host,
    SLURMGATE_SSH_PORT: String(info.port),
    SLURMGATE_SSH_USER: info.user,
    SLURMGATE_SSH_KEY: info.key,
    SLURMGATE_SSH_HOST_KEY: info.hostKey,
  };
}

export type AgentProcess = { child: ChildProcess; stateFile: string; logs: () => string; stop: () => Promise<void> };

export type E2E = {
  gw: TestGateway;
  url: string;
  admin: string;
  alice: string;
  bob: string;
  /** gamma's only when startE2E was asked for it. */
  agentTokens: Record<"alpha" | "beta", string> & { gamma?: string };
  startAgent(cluster: ClusterName, env?: Record<string, string>, args?: string[]): AgentProcess;
  runAgentOnce(
    cluster: "alpha" | "beta",
    env?: Record<string, string>,
  ): Promise<{ code: number | null; output: string }>;
  submit(token: string, spec: JobSpecInput, headers?: Record<string, string>): Promise<Job>;
  job(token: string, id: string): Promise<Job>;
  waitFor(token: string, id: string, done: (job: Job) => boolean, timeoutMs?: number): Promise<Job>;
  waitTerminal(token: string, id: string, timeoutMs?: number): Promise<Job>;
  logs(token: string, id: string, stream?: "stdout" | "stderr"): Promise<string>;
  /** The environment startAgent gives an agent (for tests that spawn their own agent binary). */
  agentEnv(cluster: ClusterName, env?: Record<string, string>): Record<string, string>;
  /** Waits until both clusters' agents have published an inventory. */
  waitClustersAlive(timeoutMs?: number, clusters?: ClusterName[]): Promise<void>;
  cgroupMode(): string;
  close(): Promise<void>;
};

type ClusterExtras = { allowedSbatchArgs?: string[]; profiles?: ClusterConfigInput["profiles"] };

export async function startE2E(
  gatewayEnv: Record<string, string> = {},
  extras: Partial<Record<"alpha" | "beta", ClusterExtras>> = {},
  /** gamma: register it in the gateway too (bring it up first with startGamma). */
  options: { gamma?: boolean } = {},
): Promise<E2E> {
  const clusters: Record<"alpha" | "beta", ClusterInfo> & { gamma?: ClusterInfo } = slurmClusters();
  if (options.gamma) {
    clusters.gamma = gammaInfo();
  }
  const gw = await createTestGateway({ SLURMGATE_LEASE_SECONDS: "30", ...gatewayEnv });
  const server = serve({ fetch: gw.app.fetch, port: 0, hostname: "127.0.0.1" });
  keepIdleConnections(server);
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = await gw.user("root", true);
  const alice = await gw.user("alice");
  const bob = await gw.user("bob");
  const agentTokens: E2E["agentTokens"] = {
    alpha: await gw.cluster("alpha", { sharedRoots: [clusters.alpha.sharedRoot], ...normalise(extras.alpha) }),
    beta: await gw.cluster("beta", { sharedRoots: [clusters.beta.sharedRoot], ...normalise(extras.beta) }),
  };
  if (clusters.gamma) {
    agentTokens.gamma = await gw.cluster("gamma", { sharedRoots: [clusters.gamma.sharedRoot] });
  }
  for (const user of ["alice", "bob", "root"]) {
    await gw.grant(user, "alpha");
    await gw.grant(user, "beta");
    if (clusters.gamma) {
      await gw.grant(user, "gamma");
    }
  }
  const workDir = mkdtempSync(join(tmpdir(), "slurmgate-e2e-"));
  const agents: AgentProcess[] = [];
  let agentCount = 0;

  const agentEnv = (cluster: ClusterName, env: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    SLURMGATE_URL: url,
    SLURMGATE_AGENT_TOKEN: agentTokens[cluster] ?? "",
    SLURMGATE_CLUSTER: cluster,
    SLURMGATE_SHARED_ROOTS: clusterInfo(cluster).sharedRoot,
    SLURM_CONF: clusterInfo(cluster).slurmConf,
    SLURMGATE_STATE_FILE: join(workDir, `agent-${cluster}-${++agentCount}.json`),
    SLURMGATE_POLL_WAIT_SECONDS: "2",
    SLURMGATE_TRACK_MIN_SECONDS: "1",
    SLURMGATE_TRACK_MAX_SECONDS: "3",
    SLURMGATE_SUBMITS_PER_SECOND: "100",
    SLURMGATE_LOG_LEVEL: "debug",
    ...env,
  });

  // The agent must run on a login node's old Node: use the machine's Node 20, not the dev Node.
  const nodeBin = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  const spawnAgent = (env: Record<string, string>, args: string[]) =>
    spawn(nodeBin, ["--import", "tsx", join(REPO, "agent/main.ts"), ...args], {
      cwd: REPO,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });

  const api = async (
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const send = () =>
      fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    // A keep-alive socket the server closed at the same moment fails once; GETs may simply retry.
    const res = await send().catch((err: Error) => (method === "GET" ? send() : Promise.reject(err)));
    const json = await res.json();
    if (!res.ok) {
      throw new Error(`${method} ${path} → ${res.status}: ${JSON.stringify(json)}`);
    }
    return json;
  };

  const e2e: E2E = {
    gw,
    url,
    admin,
    alice,
    bob,
    agentTokens,
    agentEnv,
    startAgent(cluster, env = {}, args = []) {
      const fullEnv = agentEnv(cluster, env);
      const child = spawnAgent(fullEnv, args);
      let output = "";
      child.stdout?.on("data", (d) => (output += d));
      child.stderr?.on("data", (d) => (output += d));
      const proc: AgentProcess = {
        child,
        stateFile: fullEnv.SLURMGATE_STATE_FILE!,
        logs: () => output,
        stop: () =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              resolve();
              return;
            }
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      };
      agents.push(proc);
      return proc;
    },
    runAgentOnce(cluster, env = {}) {
      const child = spawnAgent(agentEnv(cluster, env), ["--once"]);
      let output = "";
      child.stdout?.on("data", (d) => (output += d));
      child.stderr?.on("data", (d) => (output += d));
      return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
    },
    submit: (token, spec, headers) => api(token, "POST", "/v1/jobs", spec, headers) as Promise<Job>,
    job: (token, id) => api(token, "GET", `/v1/jobs/${id}`) as Promise<Job>,
    async waitFor(token, id, done, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let after = 0;
      for (;;) {
        const page = (await api(token, "GET", `/v1/jobs/${id}/events?after=${after}&wait=5`)) as {
          job: Job;
          lastSeq: number;
        };
        after = page.lastSeq;
        if (done(page.job)) {
          return page.job;
        }
        if (Date.now() > deadline) {
          throw new Error(`job ${id} still ${page.job.state} (${page.job.reason ?? ""}) after ${timeoutMs} ms`);
        }
      }
    },
    waitTerminal(token, id, timeoutMs) {
      return e2e.waitFor(token, id, (job) => isTerminal(job.state), timeoutMs);
    },
    async logs(token, id, stream = "stdout") {
      const chunk = (await api(token, "GET", `/v1/jobs/${id}/logs?stream=${stream}`)) as { data: string };
      return chunk.data;
    },
    async waitClustersAlive(timeoutMs = 60_000, names = ["alpha", "beta"]) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const { items } = (await api(admin, "GET", "/v1/clusters")) as {
          items: { name: string; alive: boolean; inventory: unknown }[];
        };
        if (names.every((name) => items.some((c) => c.name === name && c.alive && c.inventory))) {
          return;
        }
        if (agents.length > 0 && agents.every((a) => a.child.exitCode !== null)) {
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`agents did not come up:\n${agents.map((a) => a.logs()).join("\n")}`);
    },
    cgroupMode: () => clusters.alpha.cgroupMode,
    async close() {
      await Promise.all(agents.map((a) => a.stop()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return e2e;
}
