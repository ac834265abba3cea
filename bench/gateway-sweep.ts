/**
 * B4: a 10,000-element sweep accepted in one POST /v1/sweeps (one transaction: the sweep row, the
 * element jobs, their first events and labels), next to the same 10,000 jobs sent as individual
 * POST /v1/jobs (autocannon, 50 connections), each against a fresh Node gateway process on an
 * embedded libSQL file. Also one lease call that claims a whole array (MaxArraySize 1001).
 */
import autocannon from "autocannon";
import { openFileDb, seed, startGatewayProcess, tmpDbUrl } from "./gateway-fixture.ts";
import { type BenchOptions, type Row, percentile } from "./types.ts";

const ELEMENTS = 10_000;
const BASE = { name: "bench", command: ["python", "train.py", "--seed={SEED}"], labels: { project: "bench" } };
const sweepBody = (n: number) => ({ base: BASE, grid: { SEED: Array.from({ length: n }, (_, i) => i) } });

async function fresh() {
  const url = tmpDbUrl("sweep");
  const db = await openFileDb(url);
  const seeded = await seed(db, ["u0"]);
  db.client.close();
  return { url, ...seeded, gateway: await startGatewayProcess(url) };
}

async function post(url: string, token: string, body: unknown): Promise<{ ms: number; status: number }> {
  const t = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return { ms: performance.now() - t, status: res.status };
}

export async function runSweep(opts: BenchOptions): Promise<Row[]> {
  const n = opts.quick ? 2_000 : ELEMENTS;
  const rounds = opts.quick ? 2 : 3;
  const sweepMs: number[] = [];
  const leaseMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const { gateway, userTokens, agentToken } = await fresh();
    try {
      // A warm process, as in service: one small sweep in and leased before the measured one.
      await post(`${gateway.baseUrl}/v1/sweeps`, userTokens.u0!, sweepBody(200));
      await post(`${gateway.baseUrl}/v1/agent/lease`, agentToken, { agentId: "bench-agent", wait: 0 });
      opts.log(`sweep: one POST /v1/sweeps of ${n} elements (round ${round + 1})`);
      const answer = await post(`${gateway.baseUrl}/v1/sweeps`, userTokens.u0!, sweepBody(n));
      if (answer.status !== 201) {
        throw new Error(`sweep bench: POST /v1/sweeps answered ${answer.status}`);
      }
      sweepMs.push(answer.ms);
      const lease = await post(`${gateway.baseUrl}/v1/agent/lease`, agentToken, { agentId: "bench-agent", wait: 0 });
      leaseMs.push(lease.ms);
    } finally {
      await gateway.stop();
    }
  }

  const { gateway, userTokens } = await fresh();
  let individualMs: number;
  try {
    opts.log(`sweep: the same ${n} jobs as individual POST /v1/jobs (c=50)`);
    const started = performance.now();
    const result = await autocannon({
      url: `${gateway.baseUrl}/v1/jobs`,
      method: "POST",
      connections: 50,
      amount: n,
      headers: { authorization: `Bearer ${userTokens.u0}`, "content-type": "application/json" },
      body: JSON.stringify({ ...BASE, command: ["python", "train.py", "--seed=1"], env: { SEED: "1" } }),
    });
    individualMs = performance.now() - started;
    if (result.non2xx > 0 || result.errors > 0) {
      throw new Error(`sweep bench saw ${result.non2xx} non-2xx responses and ${result.errors} errors`);
    }
  } finally {
    await gateway.stop();
  }
  const p50 = percentile(sweepMs, 50);
  return [
    {
      section: "gateway",
      metric: `sweep of ${n} accepted in one POST /v1/sweeps vs ${n} × POST /v1/jobs (c=50)`,
      ours: p50,
      floor: individualMs,
      unit: "ms",
      ratio: p50 / individualMs,
      p50,
      p99: Math.max(...sweepMs),
      n: sweepMs.length,
      target: "≤ 1000 ms for 10,000",
    },
    {
      section: "gateway",
      metric: "lease call claiming one array of 1001 sweep elements",
      ours: percentile(leaseMs, 50),
      floor: null,
      unit: "ms",
      ratio: null,
      p50: percentile(leaseMs, 50),
      p99: Math.max(...leaseMs),
      n: leaseMs.length,
    },
  ];
}
