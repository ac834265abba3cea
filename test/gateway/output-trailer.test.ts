/**
 * The agent's read-once upload through the real HTTP app: the body is the file's bytes, then the
 * sha256 the agent computed while reading them. The gateway lists the file only when its own hash
 * of what arrived is that one; a torn, wrong, missing or overlong trailer lists nothing.
 */
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type World, createWorld, expectProblemShape } from "./world.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

async function leased(w: World) {
  const job = await w.submit(w.tokens.alice, { cluster: "alpha", outputs: ["model/*"] });
  const lease = await w.lease(w.tokens.alphaAgent);
  return { id: job.id, epoch: lease.body.leases.find((l) => l.jobId === job.id)!.epoch };
}

async function put(w: World, id: string, epoch: number, size: number, body: Uint8Array) {
  const query = new URLSearchParams({ epoch: String(epoch), path: "model/final.pt", size: String(size) });
  const res = await w.app.request(`/v1/agent/jobs/${id}/outputs?${query}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${w.tokens.alphaAgent}`, "content-type": "application/octet-stream" },
    body: body as BodyInit,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

const files = async (w: World, id: string) =>
  (await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice)).body.items;

describe("output upload with the sha256 after the bytes", () => {
  it("stores and lists the bytes when the trailer is their sha256; the same again is harmless", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const bytes = randomBytes(300_000);
    const body = Buffer.concat([bytes, Buffer.from(sha(bytes))]);
    const first = await put(w, id, epoch, bytes.length, body);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toEqual({ path: "model/final.pt", size: bytes.length, sha256: sha(bytes), attempt: 1 });
    expect((await put(w, id, epoch, bytes.length, body)).status).toBe(200);
    expect(await files(w, id)).toEqual([
      { path: "model/final.pt", size: bytes.length, sha256: sha(bytes), attempt: 1 },
    ]);
  });

  it("refuses, naming the body, a trailer that is another hash, missing, not lowercase hex or too long; nothing is listed", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const bytes = randomBytes(100_000);
    const other = sha("what the agent read was something else");
    const wrong = await put(w, id, epoch, bytes.length, Buffer.concat([bytes, Buffer.from(other)]));
    expect(expectProblemShape(wrong, 422).field).toBe("body");
    expect(wrong.body.detail).toContain(`the agent read sha256:${other}`);
    expect(expectProblemShape(await put(w, id, epoch, bytes.length, bytes), 422).field).toBe("body");
    const upper = Buffer.concat([bytes, Buffer.from(sha(bytes).toUpperCase())]);
    expect(expectProblemShape(await put(w, id, epoch, bytes.length, upper), 422).field).toBe("body");
    // A size one byte over the file's: the trailer's first digit is taken as a file byte.
    const shifted = Buffer.concat([bytes, Buffer.from(sha(bytes))]);
    expect(expectProblemShape(await put(w, id, epoch, bytes.length + 1, shifted), 422).field).toBe("body");
    const long = Buffer.concat([bytes, Buffer.from(sha(bytes)), Buffer.from("x")]);
    expect(expectProblemShape(await put(w, id, epoch, bytes.length, long), 413).field).toBe("body");
    expect(await files(w, id)).toEqual([]);
  });
});
