/**
 * A job of alice's on alpha whose attempt 1 brought `first` back as results/m.json and timed out,
 * and whose retry (attempt 2) brought `second` back at the same path, driven through the agent API
 * of a real in-process gateway.
 */
import { createHash } from "node:crypto";
import type { World } from "../gateway/world.ts";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function upload(w: World, id: string, epoch: number, path: string, bytes: Buffer): Promise<void> {
  const q = new URLSearchParams({ epoch: String(epoch), path, sha256: sha(bytes), size: String(bytes.length) });
  const res = await w.app.request(`/v1/agent/jobs/${id}/outputs?${q}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${w.tokens.alphaAgent}`, "content-type": "application/octet-stream" },
    body: new Uint8Array(bytes),
  });
  if (res.status !== 200) {
    throw new Error(`upload of ${path} answered ${res.status}: ${await res.text()}`);
  }
}

export async function retriedOutputs(w: World, first: Buffer, second: Buffer): Promise<string> {
  const job = await w.submit(w.tokens.alice, {
    cluster: "alpha",
    outputs: ["results/*.json"],
    retries: { max: 1, onTimeout: true, backoffSeconds: 0 },
  });
  for (const [attempt, bytes] of [
    [1, first],
    [2, second],
  ] as const) {
    const lease = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === job.id);
    if (!lease) {
      throw new Error(`attempt ${attempt} was not leased`);
    }
    const { epoch } = lease;
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch, state: "running", slurmJobId: String(80 + attempt) }]);
    await upload(w, job.id, epoch, "results/m.json", bytes);
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch, state: attempt === 1 ? "timeout" : "completed" }]);
  }
  return job.id;
}
