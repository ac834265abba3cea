/**
 * Job inputs on a real Slurm cluster: a file uploaded through the gateway reaches the job's
 * directory byte for byte (the job's own sha256sum says so), and a job whose input is gone from
 * the store is rejected before sbatch with its reason.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { type E2E, slurmJobsTagged, startE2E } from "./harness.ts";

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
  e2e.startAgent("alpha");
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});

afterAll(async () => {
  await e2e?.close();
});

describe("job inputs on real Slurm", () => {
  it("a job reads its uploaded input, and sees exactly the bytes uploaded (in parts)", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const hex = createHash("sha256").update(bytes).digest("hex");
    const input = await client.upload(bytes, { path: "data/in.bin", chunkBytes: 1024 * 1024 });
    expect(input.file).toBe(`sha256:${hex}`);
    const job = await e2e.submit(e2e.alice, {
      name: "inputs",
      cluster: "alpha",
      command: ["sha256sum", "data/in.bin"],
      inputs: [input as { file: string; path: string }],
      resources: { time: "2m" },
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 200_000);
    expect(done.state, JSON.stringify(done)).toBe("completed");
    expect(await e2e.logs(e2e.alice, job.id)).toContain(`${hex}  data/in.bin`);
  });

  it("a job whose input is no longer stored is rejected before sbatch as input_missing", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const input = await client.upload(new TextEncoder().encode("gone before the agent comes"), { path: "in.txt" });
    await e2e.gw.deps.blobs.delete(input.file.slice("sha256:".length));
    const job = await e2e.submit(e2e.alice, {
      name: "inputs-missing",
      cluster: "alpha",
      command: ["cat", "in.txt"],
      inputs: [input],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
    expect(done.state).toBe("rejected");
    expect(done.code).toBe("input_missing");
    expect(done.reason).toContain("in.txt");
    expect(slurmJobsTagged("alpha", job.id)).toEqual([]);
  });
});
