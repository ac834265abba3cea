/**
 * Job inputs on a real Slurm cluster: a file uploaded through the gateway reaches the job's
 * directory byte for byte (the job's own sha256sum says so), a 200 MiB one without the agent ever
 * holding it, and a job whose input is gone from the store is rejected before sbatch with its reason.
 */
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { type E2E, slurmJobsTagged, startE2E } from "./harness.ts";

let e2e: E2E;
let agentPid: number;

const MIB = 1024 * 1024;

/** The agent's peak resident memory so far (VmHWM), in bytes. */
const peakRss = (pid: number) => {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (!kb) {
    throw new Error(`no VmHWM for pid ${pid}`);
  }
  return Number(kb) * 1024;
};

/** `mib` MiB of deterministic bytes (AES-CTR over zeros) in a file, one MiB at a time; returns path and sha256. */
function bigFile(mib: number): { path: string; hex: string } {
  const path = join(mkdtempSync(join(tmpdir(), "sg-big-input-")), "in.bin");
  const cipher = createCipheriv("aes-256-ctr", Buffer.alloc(32, 7), Buffer.alloc(16, 1));
  const hash = createHash("sha256");
  const zeros = Buffer.alloc(MIB);
  const fd = openSync(path, "w");
  try {
    for (let i = 0; i < mib; i++) {
      const chunk = cipher.update(zeros);
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return { path, hex: hash.digest("hex") };
}

beforeAll(async () => {
  e2e = await startE2E();
  agentPid = e2e.startAgent("alpha").child.pid!;
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

  it("a 200 MiB input reaches the job byte-identical, and the agent streams it (its peak memory grows far less)", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const big = bigFile(200);
    try {
      const input = await client.upload(big.path, { path: "big/in.bin" });
      expect(input.file).toBe(`sha256:${big.hex}`);
      const before = peakRss(agentPid);
      const job = await e2e.submit(e2e.alice, {
        name: "inputs-200m",
        cluster: "alpha",
        command: ["sha256sum", "big/in.bin"],
        inputs: [input],
        resources: { time: "5m" },
      });
      const done = await e2e.waitTerminal(e2e.alice, job.id, 300_000);
      expect(done.state, JSON.stringify(done)).toBe("completed");
      expect(await e2e.logs(e2e.alice, job.id)).toContain(`${big.hex}  big/in.bin`);
      // Holding the input whole would take at least 200 MiB more; streaming takes a few buffers.
      const growth = peakRss(agentPid) - before;
      expect(growth, `the agent's peak RSS grew by ${Math.round(growth / MIB)} MiB`).toBeLessThan(100 * MIB);
    } finally {
      rmSync(big.path, { force: true });
    }
  }, 400_000);

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
