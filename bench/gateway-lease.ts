/**
 * Lease claim and report latency in-process (app.request, no sockets) on an embedded libSQL file,
 * next to the same store calls without the HTTP layer.
 */
import { createApp } from "../gateway/app.ts";
import { parseGatewayConfig } from "../gateway/config.ts";
import { createNodeDeps } from "../gateway/node-deps.ts";
import { claimJobs } from "../gateway/store/leases.ts";
import { applyReport } from "../gateway/store/reports.ts";
import { seed, tmpDbUrl } from "./gateway-fixture.ts";
import { type BenchOptions, type Row, percentile, sampleMs } from "./types.ts";

export async function runLease(opts: BenchOptions): Promise<Row[]> {
  const n = opts.quick ? 200 : 2_000;
  const config = parseGatewayConfig({
    SLURMGATE_DB_URL: tmpDbUrl("lease"),
    SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
    SLURMGATE_LOG_LEVEL: "error",
  });
  const deps = await createNodeDeps(config);
  const { userTokens, agentToken } = await seed(deps.db, ["u0"]);
  const app = createApp(deps);
  const post = async (path: string, token: string, body: unknown) => {
    const res = await app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (res.status >= 300) {
      throw new Error(`${path}: ${res.status} ${await res.text()}`);
    }
    return res.json() as Promise<unknown>;
  };
  opts.log(`lease: queueing ${2 * n} jobs`);
  for (let i = 0; i < 2 * n; i += 100) {
    await Promise.all(
      Array.from({ length: 100 }, () => post("/v1/jobs", userTokens.u0!, { name: "l", command: ["true"] })),
    );
  }

  const leases: { jobId: string; epoch: number }[] = [];
  const leaseHttp = await sampleMs(n, async () => {
    const body = (await post("/v1/agent/lease", agentToken, { agentId: "http", max: 1, wait: 0 })) as {
      leases: { jobId: string; epoch: number }[];
    };
    leases.push(...body.leases);
  });
  const reportHttp = await sampleMs(n, (i) =>
    post("/v1/agent/reports", agentToken, {
      agentId: "http",
      reports: [{ jobId: leases[i]!.jobId, epoch: leases[i]!.epoch, state: "submitted", slurmJobId: String(i + 1) }],
    }),
  );

  const claimed: { jobId: string; epoch: number }[] = [];
  const leaseStore = await sampleMs(n, async () => {
    const rows = await claimJobs(deps.db, {
      cluster: "alpha",
      agentId: "store",
      max: 1,
      now: Date.now(),
      leaseMs: 120_000,
    });
    claimed.push(...rows);
  });
  const reportStore = await sampleMs(n, (i) =>
    applyReport(
      deps.db,
      { cluster: "alpha", agentId: "store", now: Date.now() },
      { jobId: claimed[i]!.jobId, epoch: claimed[i]!.epoch, state: "submitted", slurmJobId: String(i + 1), logs: [] },
    ),
  );
  deps.db.client.close();
  if (leases.length !== n || claimed.length !== n) {
    throw new Error(`lease bench claimed ${leases.length} / ${claimed.length} of ${n}`);
  }
  const row = (metric: string, ours: number[], floor: number[]): Row => ({
    section: "gateway",
    metric,
    ours: percentile(ours, 50),
    floor: percentile(floor, 50),
    unit: "ms p50",
    ratio: percentile(ours, 50) / percentile(floor, 50),
    p50: percentile(ours, 50),
    p99: percentile(ours, 99),
    n,
  });
  return [
    row("lease claim max=1 (app.request vs store claimJobs)", leaseHttp, leaseStore),
    row("report 1 transition (app.request vs store applyReport)", reportHttp, reportStore),
  ];
}
