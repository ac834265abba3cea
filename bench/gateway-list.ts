/**
 * B5: GET /v1/jobs with 100,000 jobs in the database (20 owners): first page and a deep keyset
 * page over HTTP, next to the same query run in-process on the store.
 */
import { newId } from "../gateway/ids.ts";
import { listJobs } from "../gateway/store/jobs.ts";
import { JobSpec } from "../schemas/index.ts";
import { openFileDb, seed, startGatewayProcess, tmpDbUrl } from "./gateway-fixture.ts";
import { type BenchOptions, type Row, percentile, sampleMs } from "./types.ts";

const OWNERS = Array.from({ length: 20 }, (_, i) => `u${i}`);

async function seedJobs(url: string, total: number) {
  const db = await openFileDb(url);
  const seeded = await seed(db, OWNERS);
  const spec = JSON.stringify(
    JobSpec.parse({ name: "listed", command: ["python", "train.py"], labels: { project: "bench" } }),
  );
  const states = ["completed", "completed", "failed", "running", "queued"];
  const start = Date.now() - total;
  for (let i = 0; i < total; i += 1_000) {
    const statements = [];
    for (let k = i; k < Math.min(total, i + 1_000); k++) {
      const at = start + k;
      statements.push({
        sql: `INSERT INTO jobs (id, owner, name, state, cluster, partition, spec, labels, last_seq, created_at, updated_at)
              VALUES (?, ?, 'listed', ?, 'alpha', 'cpu', ?, '{"project":"bench"}', 1, ?, ?)`,
        args: [newId("job", at), OWNERS[k % OWNERS.length]!, states[k % states.length]!, spec, at, at],
      });
    }
    await db.client.batch(statements, "write");
  }
  return { db, ...seeded };
}

export async function runList(opts: BenchOptions): Promise<Row[]> {
  const total = opts.quick ? 20_000 : 100_000;
  const n = opts.quick ? 200 : 2_000;
  const url = tmpDbUrl("list");
  opts.log(`list: seeding ${total} jobs`);
  const { db, userTokens } = await seedJobs(url, total);
  const owner = "u7";
  const depth = Math.floor(total / OWNERS.length) - 200;
  const deep = await db.client.execute({
    sql: "SELECT id FROM jobs WHERE owner = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
    args: [owner, depth],
  });
  const cursor = String(deep.rows[0]?.id);

  const rawFirst = await sampleMs(n, () => listJobs(db, { owner, limit: 50 }));
  const rawDeep = await sampleMs(n, () => listJobs(db, { owner, limit: 50, cursor }));
  db.client.close();

  const gateway = await startGatewayProcess(url);
  try {
    const headers = { authorization: `Bearer ${userTokens[owner]}` };
    const get = async (query: string) => {
      const res = await fetch(`${gateway.baseUrl}/v1/jobs?limit=50${query}`, { headers });
      const body = (await res.json()) as { items: unknown[] };
      if (res.status !== 200 || body.items.length !== 50) {
        throw new Error(`list returned ${res.status} with ${body.items.length} items`);
      }
    };
    await sampleMs(100, () => get(""));
    opts.log(`list: ${n} first pages and ${n} deep pages (${depth} jobs down) over HTTP`);
    const first: number[] = [];
    const deepHttp: number[] = [];
    for (let i = 0; i < n; i++) {
      first.push(...(await sampleMs(1, () => get(""))));
      deepHttp.push(...(await sampleMs(1, () => get(`&cursor=${cursor}`))));
    }
    const row = (metric: string, ours: number[], floor: number[] | null, target?: string): Row => ({
      section: "gateway",
      metric,
      ours: percentile(ours, 50),
      floor: floor ? percentile(floor, 50) : null,
      unit: "ms p50",
      ratio: floor ? percentile(ours, 50) / percentile(floor, 50) : null,
      p50: percentile(ours, 50),
      p99: percentile(ours, 99),
      n: ours.length,
      target,
    });
    return [
      row(
        `list first page @${total / 1000}k jobs (HTTP vs in-process store)`,
        first,
        rawFirst,
        "p50 ≤ 3 ms, p99 ≤ 15 ms",
      ),
      row(
        `list deep page @${total / 1000}k jobs (HTTP vs in-process store)`,
        deepHttp,
        rawDeep,
        "p50 ≤ 3 ms, p99 ≤ 15 ms",
      ),
      row("list deep page vs first page (HTTP)", deepHttp, first, "ratio ≤ 1.5"),
    ];
  } finally {
    await gateway.stop();
  }
}
