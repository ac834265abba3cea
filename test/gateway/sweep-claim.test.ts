/**
 * Claiming sweep elements as Slurm arrays (Lease.batch): one group → one batch in element order
 * beyond `max`, split at the cluster's MaxArraySize, mixed specs → groups and plain jobs, a capped
 * sweep one array at a time, a retried element alone, a taken-over lease with its stored batch,
 * an element's own cancel order, and a corrupt element that stalls nobody.
 */
import { describe, expect, it } from "vitest";
import { expireLeases } from "../../gateway/store/leases.ts";
import { testClock } from "../helpers/gateway.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { type World, createWorld, spec } from "./world.ts";

type Batch = { id: string; index: number; size: number; maxParallel: number | null };
type Lease = { jobId: string; epoch: number; attempt: number; slurmJobId: string | null; batch: Batch | null };
type Created = { id: string; jobIds: string[] };

async function sweep(w: World, body: unknown): Promise<Created> {
  const res = await w.call<Created>("POST", "/v1/sweeps", w.tokens.alice, body);
  if (res.status !== 201) {
    throw new Error(`sweep refused: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

async function lease(w: World, extra: Record<string, unknown> = {}, agentId = "agent-1"): Promise<Lease[]> {
  const res = await w.lease(w.tokens.alphaAgent, agentId, extra);
  expect(res.status).toBe(200);
  return res.body.leases as unknown as Lease[];
}

const grid = (n: number) => ({ I: Array.from({ length: n }, (_, i) => i) });
const base = (extra: Parameters<typeof spec>[0] = {}) => spec({ cluster: "alpha", ...extra });

/** The leases of each batch id, in the order the response lists them. */
function byBatch(leases: Lease[]): Map<string, Lease[]> {
  const out = new Map<string, Lease[]>();
  for (const l of leases) {
    if (l.batch) {
      out.set(l.batch.id, [...(out.get(l.batch.id) ?? []), l]);
    }
  }
  return out;
}

describe("claiming sweep elements as arrays", () => {
  it("claims one group as one batch, indexes 0..k-1 in element order, beyond max", async () => {
    const w = await createWorld();
    const s = await sweep(w, { base: base(), grid: grid(12), maxParallel: 4 });
    const leases = await lease(w, { max: 2 });
    expect(leases.map((l) => l.jobId)).toEqual(s.jobIds);
    const batchId = leases[0]!.batch!.id;
    expect(batchId).toMatch(/^bat_/);
    expect(leases.map((l) => l.batch)).toEqual(
      s.jobIds.map((_, index) => ({ id: batchId, index, size: 12, maxParallel: 4 })),
    );
    expect(await lease(w)).toEqual([]);
    for (const id of s.jobIds) {
      const job = await w.job(id);
      expect(job.state).toBe("leased");
      expect(job.events.at(-1)).toMatchObject({ type: "state", state: "leased" });
    }
  });

  it("splits a group at the cluster's reported MaxArraySize: 2,500 → 1001, 1001, 498", async () => {
    const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "100000" });
    await w.inventory("alpha", { ...sampleInventory("a100"), maxArraySize: 1001 });
    const s = await sweep(w, { base: base(), grid: grid(2_500) });
    const sizes: number[] = [];
    const seen: string[] = [];
    for (let call = 0; call < 4; call++) {
      const leases = await lease(w, { max: 10 });
      if (leases.length === 0) {
        break;
      }
      const batches = byBatch(leases);
      expect(batches.size).toBe(1);
      const [members] = [...batches.values()];
      expect(members!.map((l) => l.batch!.index)).toEqual(members!.map((_, i) => i));
      expect(new Set(members!.map((l) => l.batch!.size))).toEqual(new Set([members!.length]));
      sizes.push(members!.length);
      seen.push(...members!.map((l) => l.jobId));
    }
    expect(sizes).toEqual([1001, 1001, 498]);
    expect(seen).toEqual(s.jobIds);
  });

  it("uses Slurm's default MaxArraySize until the agent reports one", async () => {
    const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "100000" });
    await sweep(w, { base: base(), grid: grid(1_005) });
    expect((await lease(w)).length).toBe(1_001);
    expect((await lease(w)).length).toBe(4);
  });

  it("groups mixed specs: equal but for name/env/command/labels share an array; the rest are plain jobs", async () => {
    const w = await createWorld();
    await w.inventory("alpha", { ...sampleInventory("a100"), maxArraySize: 100 });
    const s = await sweep(w, {
      specs: [
        base({ name: "a0", command: ["a"], env: { X: "1" } }),
        base({ name: "b0", resources: { cpusPerTask: 2 } }),
        base({ name: "a1", command: ["other"], labels: { k: "v" } }),
        base({ name: "script", command: undefined, script: "echo hi" }),
        base({ name: "array", array: { indexes: "0-3" } }),
        base({ name: "b1", resources: { cpusPerTask: 2 }, env: { Y: "2" } }),
        base({ name: "a2", env: { Z: "3" } }),
      ],
    });
    const leases = await lease(w, { max: 10 });
    expect(leases.map((l) => l.jobId).sort()).toEqual([...s.jobIds].sort());
    const of = (i: number) => leases.find((l) => l.jobId === s.jobIds[i])!.batch;
    expect([of(3), of(4)]).toEqual([null, null]);
    const a = [of(0), of(2), of(6)];
    const b = [of(1), of(5)];
    expect(new Set(a.map((x) => x!.id)).size).toBe(1);
    expect(new Set(b.map((x) => x!.id)).size).toBe(1);
    expect(a[0]!.id).not.toBe(b[0]!.id);
    expect(a.map((x) => [x!.index, x!.size])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    expect(b.map((x) => [x!.index, x!.size])).toEqual([
      [0, 2],
      [1, 2],
    ]);
    // Plain jobs on their own never get a batch.
    const plain = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const again = await lease(w);
    expect(again.map((l) => [l.jobId, l.batch])).toEqual([[plain.id, null]]);
  });

  it("does not group a dependent element, and never groups across sweeps", async () => {
    const w = await createWorld();
    const first = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const one = await sweep(w, { base: base(), grid: grid(2) });
    const two = await sweep(w, {
      base: base({ dependsOn: [{ job: first.id, condition: "afterany" }] }),
      grid: grid(2),
    });
    const three = await sweep(w, { base: base(), grid: grid(2) });
    const groups = async (s: Created) =>
      (
        await w.db.client.execute({
          sql: "SELECT batch_group FROM jobs WHERE sweep_id = ? ORDER BY sweep_index",
          args: [s.id],
        })
      ).rows.map((r) => r.batch_group);
    const [g1, g3] = [await groups(one), await groups(three)];
    expect(g1[0]).toBeTruthy();
    expect(g1).toEqual([g1[0], g1[0]]);
    expect(await groups(two)).toEqual([null, null]);
    const leases = await lease(w, { max: 10 });
    const batches = [...byBatch(leases).values()].map((m) => m.map((l) => l.jobId));
    expect(batches).toEqual([one.jobIds, three.jobIds]);
    expect(g3).toEqual(g1);
  });

  it("claims a capped sweep one array at a time: no second batch while any element is held", async () => {
    const w = await createWorld();
    await w.inventory("alpha", { ...sampleInventory("a100"), maxArraySize: 3 });
    const s = await sweep(w, { base: base(), grid: grid(5), maxParallel: 2 });
    const other = await sweep(w, { base: base(), grid: grid(4) });
    const first = await lease(w, { max: 10 });
    // The capped sweep's first array only; the uncapped sweep's arrays all at once.
    expect(first.filter((l) => s.jobIds.includes(l.jobId)).map((l) => l.jobId)).toEqual(s.jobIds.slice(0, 3));
    expect([...byBatch(first).values()].map((m) => m.map((l) => l.jobId))).toEqual([
      s.jobIds.slice(0, 3),
      other.jobIds.slice(0, 3),
      other.jobIds.slice(3),
    ]);
    expect((await w.job(s.jobIds[3]!)).state).toBe("queued");
    expect(await lease(w, { max: 10 })).toEqual([]);
    // Two of three done: one element still held, so still nothing.
    const held = first.filter((l) => s.jobIds.includes(l.jobId));
    await w.report(
      w.tokens.alphaAgent,
      held.slice(0, 2).map((l, i) => ({ jobId: l.jobId, epoch: l.epoch, state: "completed", slurmJobId: `5_${i}` })),
    );
    expect(await lease(w, { max: 10 })).toEqual([]);
    await w.report(w.tokens.alphaAgent, [
      { jobId: held[2]!.jobId, epoch: held[2]!.epoch, state: "failed", slurmJobId: "5_2", exitCode: 1 },
    ]);
    const next = await lease(w, { max: 10 });
    expect(next.map((l) => [l.jobId, l.batch?.index, l.batch?.size, l.batch?.maxParallel])).toEqual([
      [s.jobIds[3], 0, 2, 2],
      [s.jobIds[4], 1, 2, 2],
    ]);
  });

  it("keeps a capped sweep to one group per claim; the other group waits in the queue", async () => {
    const w = await createWorld();
    const s = await sweep(w, {
      specs: [base({ name: "a0" }), base({ name: "b0", resources: { cpusPerTask: 2 } }), base({ name: "a1" })],
      maxParallel: 1,
    });
    const first = await lease(w, { max: 10 });
    expect(first.map((l) => l.jobId)).toEqual([s.jobIds[0], s.jobIds[2]]);
    const waiting = await w.job(s.jobIds[1]!);
    expect(waiting.state).toBe("queued");
    expect(waiting.reason).toMatch(/maxParallel/);
    await w.report(
      w.tokens.alphaAgent,
      first.map((l) => ({ jobId: l.jobId, epoch: l.epoch, state: "completed" })),
    );
    const second = await lease(w, { max: 10 });
    expect(second.map((l) => [l.jobId, l.batch?.size])).toEqual([[s.jobIds[1], 1]]);
  });

  it("brings a retried element back as a new batch of just it", async () => {
    const w = await createWorld();
    const s = await sweep(w, {
      base: base({ retries: { max: 1, onNodeFail: true, backoffSeconds: 0 } }),
      grid: grid(3),
      maxParallel: 3,
    });
    const first = await lease(w, { max: 10 });
    const oldBatch = first[0]!.batch!.id;
    await w.report(
      w.tokens.alphaAgent,
      first.map((l, i) => ({
        jobId: l.jobId,
        epoch: l.epoch,
        state: i === 1 ? "node_fail" : "completed",
        slurmJobId: `8_${i}`,
      })),
    );
    const retried = await w.job(s.jobIds[1]!);
    expect([retried.state, retried.attempt]).toEqual(["queued", 2]);
    // The ended attempt's array is not the next attempt's.
    const stored = await w.db.client.execute({ sql: "SELECT batch_id FROM jobs WHERE id = ?", args: [retried.id] });
    expect(stored.rows[0]?.batch_id).toBeNull();
    const again = await lease(w, { max: 10 });
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ jobId: s.jobIds[1], attempt: 2, slurmJobId: null });
    expect(again[0]!.batch).toMatchObject({ index: 0, size: 1, maxParallel: 3 });
    expect(again[0]!.batch!.id).not.toBe(oldBatch);
  });

  it("re-leases an expired array with the batch it was given, all of it at once", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "30" }, clock);
    const s = await sweep(w, { base: base(), grid: grid(4) });
    const first = await lease(w, { max: 10 }, "a1");
    await w.report(
      w.tokens.alphaAgent,
      first
        .slice(0, 2)
        .map((l) => ({ jobId: l.jobId, epoch: l.epoch, state: "submitted", slurmJobId: `77_${l.batch!.index}` })),
      "a1",
    );
    clock.advance(31_000);
    // The whole array comes back at once, beyond max, so its new holder reconciles it in one go.
    const taken = await lease(w, { max: 1 }, "a2");
    expect(taken.map((l) => l.jobId)).toEqual(s.jobIds);
    expect(taken.map((l) => l.batch)).toEqual(first.map((l) => l.batch));
    expect(taken.map((l) => l.slurmJobId)).toEqual(["77_0", "77_1", null, null]);
    expect(taken.map((l) => l.epoch)).toEqual(first.map((l) => l.epoch + 1));
  });

  it("leaves an expired array's leases to a takeover, never back in the queue where it could run twice", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_LEASE_SECONDS: "30" }, clock);
    const plain = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const s = await sweep(w, { base: base(), grid: grid(3) });
    const first = await lease(w, { max: 10 }, "a1");
    expect(first).toHaveLength(4);
    clock.advance(31_000);
    // The holder may have run sbatch for the array and died before reporting it.
    expect(await expireLeases(w.db, clock.now())).toBe(1);
    expect((await w.job(plain.id)).state).toBe("queued");
    for (const id of s.jobIds) {
      expect((await w.job(id)).state).toBe("leased");
    }
    const taken = await lease(w, { max: 10 }, "a2");
    const batched = taken.filter((l) => l.batch);
    expect(batched.map((l) => [l.jobId, l.batch])).toEqual(first.filter((l) => l.batch).map((l) => [l.jobId, l.batch]));
  });

  it("orders the cancel of one element of an array with its <array>_<index> Slurm id", async () => {
    const w = await createWorld();
    const s = await sweep(w, { base: base(), grid: grid(4) });
    const leases = await lease(w, { max: 10 });
    await w.report(
      w.tokens.alphaAgent,
      leases.map((l) => ({ jobId: l.jobId, epoch: l.epoch, state: "running", slurmJobId: `4242_${l.batch!.index}` })),
    );
    const cancelled = await w.call<{ state: string; cancelRequested: boolean }>(
      "POST",
      `/v1/jobs/${s.jobIds[3]}/cancel`,
      w.tokens.alice,
    );
    expect(cancelled.body).toMatchObject({ state: "running", cancelRequested: true });
    const res = await w.lease(w.tokens.alphaAgent, "agent-1", { holding: s.jobIds });
    expect(res.body.cancels).toEqual([{ jobId: s.jobIds[3], epoch: leases[3]!.epoch, slurmJobId: "4242_3" }]);
  });

  it("rejects a corrupt element on its own and batches the others with contiguous indexes", async () => {
    const w = await createWorld();
    const s = await sweep(w, { base: base(), grid: grid(5) });
    await w.db.client.execute({ sql: "UPDATE jobs SET spec = '{broken' WHERE id = ?", args: [s.jobIds[0]!] });
    await w.db.client.execute({
      sql: "UPDATE jobs SET spec = json_set(spec, '$.workdir', '../../etc') WHERE id = ?",
      args: [s.jobIds[3]!],
    });
    const leases = await lease(w, { max: 2 });
    expect(leases.map((l) => l.jobId)).toEqual([s.jobIds[1], s.jobIds[2], s.jobIds[4]]);
    expect(leases.map((l) => [l.batch?.index, l.batch?.size])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    for (const i of [0, 3]) {
      expect(await w.job(s.jobIds[i]!)).toMatchObject({ state: "rejected" });
    }
    const detail = await w.call<{ counts: Record<string, number> }>("GET", `/v1/sweeps/${s.id}`, w.tokens.alice);
    expect(detail.body.counts).toEqual({ rejected: 2, leased: 3 });
  });
});
