/**
 * Seeds a gateway through the admin helpers (a user, a cluster with a live "agent", a grant) and
 * plays the agent over HTTP with the raw client, so tests can move jobs through their states
 * without Slurm.
 */
import { createClient, type SlurmgateClient } from "../../../client/index.ts";
import type { components } from "../../../client/generated/api.ts";

type Report = components["schemas"]["Report"];

export type World = {
  admin: SlurmgateClient;
  user: SlurmgateClient;
  userToken: string;
  agentToken: string;
  agent: FakeAgent;
};

export const CLUSTER = "hpc1";

export const INVENTORY: components["schemas"]["Inventory"] & object = {
  slurmVersion: "24.11.1",
  apptainerVersion: "1.3.4",
  accounting: true,
  agentVersion: "test",
  agentId: "test-agent",
  mode: "local",
  partitions: [
    {
      name: "cpu",
      default: true,
      state: "up",
      nodes: 4,
      maxTimeSeconds: 86_400,
      maxCpusPerNode: 64,
      maxMemMBPerNode: 256_000,
      maxNodes: 4,
      gpus: [],
    },
    {
      name: "gpu",
      default: false,
      state: "up",
      nodes: 2,
      maxTimeSeconds: 86_400,
      maxCpusPerNode: 64,
      maxMemMBPerNode: 512_000,
      maxNodes: 2,
      gpus: [{ type: "a100", count: 4 }],
    },
  ],
};

/** Creates user `name`, the cluster, a grant and both tokens; publishes an inventory. */
export async function seedWorld(url: string, adminToken: string, name = "alice"): Promise<World> {
  const admin = createClient({ baseUrl: url, token: adminToken });
  await admin.admin.users.upsert({ name });
  await admin.admin.clusters.upsert({ name: CLUSTER, sharedRoots: ["/scratch"], description: "test cluster" });
  await admin.admin.grants.upsert({ user: name, cluster: CLUSTER });
  const userToken = (await admin.admin.tokens.create({ kind: "user", user: name, label: "tests" })).token;
  const agentToken = (await admin.admin.tokens.create({ kind: "agent", cluster: CLUSTER })).token;
  const agent = new FakeAgent(url, agentToken);
  await agent.publishInventory();
  return { admin, user: createClient({ baseUrl: url, token: userToken }), userToken, agentToken, agent };
}

/** Plays the cluster agent: lease jobs, report states and log bytes. */
export class FakeAgent {
  readonly client: SlurmgateClient;
  readonly epochs = new Map<string, number>();
  readonly offsets = new Map<string, number>();
  readonly specs = new Map<string, components["schemas"]["JobSpec"]>();

  constructor(url: string, token: string) {
    this.client = createClient({ baseUrl: url, token });
  }

  async publishInventory(): Promise<void> {
    const { error } = await this.client.raw.PUT("/v1/agent/inventory", { body: INVENTORY });
    if (error) {
      throw new Error(`inventory: ${error.detail}`);
    }
  }

  /** Leases whatever is queued (waiting up to `wait` s for something to arrive). */
  async lease(wait = 0): Promise<string[]> {
    const { data, error } = await this.client.raw.POST("/v1/agent/lease", {
      body: { agentId: "test-agent", max: 50, wait, holding: [...this.epochs.keys()] },
    });
    if (error) {
      throw new Error(`lease: ${error.detail}`);
    }
    for (const lease of data.leases) {
      this.epochs.set(lease.jobId, lease.epoch);
      this.specs.set(lease.jobId, lease.spec);
    }
    return data.leases.map((l) => l.jobId);
  }

  /** Leases until `id` is held. */
  async leaseJob(id: string): Promise<void> {
    for (let i = 0; i < 20 && !this.epochs.has(id); i++) {
      await this.lease(1);
    }
    if (!this.epochs.has(id)) {
      throw new Error(`could not lease ${id}`);
    }
  }

  async report(id: string, report: Omit<Partial<Report>, "jobId" | "epoch">): Promise<string> {
    const epoch = this.epochs.get(id);
    if (epoch === undefined) {
      throw new Error(`${id} is not leased`);
    }
    const { data, error } = await this.client.raw.POST("/v1/agent/reports", {
      body: { agentId: "test-agent", reports: [{ logs: [], ...report, jobId: id, epoch }] },
    });
    if (error) {
      throw new Error(`report: ${error.detail}`);
    }
    return data.outcomes[0]?.status ?? "none";
  }

  /** Appends text to a job's stream at the next offset. */
  async log(id: string, text: string, stream: "stdout" | "stderr" = "stdout"): Promise<void> {
    const key = `${id}:${stream}`;
    const offset = this.offsets.get(key) ?? 0;
    const bytes = new TextEncoder().encode(text);
    this.offsets.set(key, offset + bytes.length);
    await this.report(id, { logs: [{ stream, offset, data: Buffer.from(bytes).toString("base64") }] });
  }

  /** leased → submitted → running. */
  async start(id: string, slurmJobId = "4242"): Promise<void> {
    await this.leaseJob(id);
    await this.report(id, { state: "submitted", slurmJobId });
    await this.report(id, { state: "running" });
  }

  async finish(id: string, state: Report["state"] = "completed", exitCode = 0): Promise<void> {
    await this.report(id, { state, exitCode });
  }
}

/**
 * Runs every job it can lease until stopped. A job's labels script it: `outcome` is its final
 * state (default completed), `exit` its exit code, and env `SAY` is written to stdout as a line first.
 */
export function autoAgent(agent: FakeAgent) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      for (const id of await agent.lease(1)) {
        const spec = agent.specs.get(id);
        await agent.start(id);
        if (spec?.env.SAY) {
          await agent.log(id, `${spec.env.SAY}\n`);
        }
        const outcome = (spec?.labels.outcome ?? "completed") as Report["state"];
        await agent.finish(id, outcome, Number(spec?.labels.exit ?? (outcome === "completed" ? 0 : 1)));
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}
