/**
 * B1: POST /v1/jobs over real HTTP (50 connections, autocannon) against a Node gateway process on an
 * embedded libSQL file, next to the raw rate of inserting the same row, one row per transaction.
 */
import autocannon from "autocannon";
import { newId } from "../gateway/ids.ts";
import { JobSpec } from "../schemas/index.ts";
import { openFileDb, seed, startGatewayProcess, tmpDbUrl } from "./gateway-fixture.ts";
import { type BenchOptions, type Row, percentile } from "./types.ts";

const BODY = { name: "bench", command: ["python", "train.py", "--epochs", "3"], labels: { project: "bench" } };

/** The jobs row the gateway writes for BODY, inserted in autocommit mode for `seconds`. */
async function rawInsertRate(seconds: number) {
  const db = await openFileDb(tmpDbUrl("raw"));
  const spec = JSON.stringify(JobSpec.parse(BODY));
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    const now = Date.now();
    await db.client.execute({
      sql: `INSERT INTO jobs (id, owner, name, state, reason, cluster, partition, attempt, epoch, run_after, cancel_requested,
              spec, labels, idempotency_key, spec_hash, last_seq, created_at, updated_at)
            VALUES (?, ?, ?, 'queued', ?, ?, ?, 1, 0, 0, 0, ?, ?, ?, ?, 1, ?, ?)`,
      args: [newId("job", now), "u0", "bench", null, "alpha", "cpu", spec, '{"project":"bench"}', null, null, now, now],
    });
    latencies.push(performance.now() - t);
  }
  const elapsed = (performance.now() - start) / 1000;
  db.client.close();
  return {
    rate: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    n: latencies.length,
  };
}

export async function runSubmit(opts: BenchOptions): Promise<Row[]> {
  const seconds = opts.quick ? 2 : 10;
  opts.log(`submit: raw one-row-per-transaction insert for ${seconds}s`);
  const raw = await rawInsertRate(seconds);

  const url = tmpDbUrl("submit");
  const db = await openFileDb(url);
  const { userTokens } = await seed(db, ["u0"]);
  db.client.close();
  const gateway = await startGatewayProcess(url);
  try {
    const request = {
      url: `${gateway.baseUrl}/v1/jobs`,
      method: "POST",
      connections: 50,
      headers: { authorization: `Bearer ${userTokens.u0}`, "content-type": "application/json" },
      body: JSON.stringify(BODY),
    };
    opts.log("submit: warm-up");
    await autocannon({ ...request, duration: 1 });
    opts.log(`submit: 50 connections for ${seconds}s`);
    const result = await autocannon({ ...request, duration: seconds });
    if (result.non2xx > 0 || result.errors > 0) {
      throw new Error(`submit bench saw ${result.non2xx} non-2xx responses and ${result.errors} errors`);
    }
    const ours = result.requests.total / result.duration;
    return [
      {
        section: "gateway",
        metric: "submit POST /v1/jobs (c=50, HTTP) vs raw 1-row tx insert",
        ours: Math.round(ours),
        floor: Math.round(raw.rate),
        unit: "req/s",
        ratio: ours / raw.rate,
        p50: result.latency.p50,
        p99: result.latency.p99,
        n: result.requests.total,
        target: "ratio ≥ 0.6, ≥ 10k/s, p99 ≤ 20 ms",
      },
      {
        section: "gateway",
        metric: "raw insert latency (floor detail)",
        ours: raw.p50,
        floor: null,
        unit: "ms",
        ratio: null,
        p50: raw.p50,
        p99: raw.p99,
        n: raw.n,
      },
    ];
  } finally {
    await gateway.stop();
  }
}
