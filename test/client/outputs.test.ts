/**
 * client.listFiles / client.download against the real in-process gateway: one file, a prefix's
 * set, a missing path (typed 404), and bytes that do not hash to the listed sha256 (nothing kept).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IntegrityError, SlurmgateError, createClient } from "../../client/index.ts";
import { type World, createWorld } from "../gateway/world.ts";
import { retriedOutputs } from "../helpers/retried-outputs.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

async function jobWithOutputs(w: World, files: Record<string, Buffer>) {
  const job = await w.submit(w.tokens.alice, { cluster: "alpha", outputs: ["results/**", "model/*"] });
  const lease = await w.lease(w.tokens.alphaAgent);
  const epoch = lease.body.leases.find((l) => l.jobId === job.id)!.epoch;
  for (const [path, bytes] of Object.entries(files)) {
    const q = new URLSearchParams({ epoch: String(epoch), path, sha256: sha(bytes), size: String(bytes.length) });
    const res = await w.app.request(`/v1/agent/jobs/${job.id}/outputs?${q}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${w.tokens.alphaAgent}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(bytes),
    });
    expect(res.status).toBe(200);
  }
  return job.id;
}

const clientOf = (w: World) =>
  createClient({ baseUrl: "http://gateway.test", token: w.tokens.alice, fetch: async (req) => w.app.request(req) });

describe("client downloads", () => {
  it("downloads one file, and a prefix's files with their paths below it", async () => {
    const w = await createWorld();
    const files = {
      "results/a.json": Buffer.from("{}"),
      "results/deep/b.csv": randomBytes(3000),
      "model/final.pt": randomBytes(10_000),
    };
    const id = await jobWithOutputs(w, files);
    const client = clientOf(w);
    expect((await client.listFiles(id)).map((f) => f.path)).toEqual([
      "model/final.pt",
      "results/a.json",
      "results/deep/b.csv",
    ]);
    const dir = mkdtempSync(join(tmpdir(), "sg-client-dl-"));
    await client.download(id, "model/final.pt", join(dir, "final.pt"));
    expect(readFileSync(join(dir, "final.pt")).equals(files["model/final.pt"])).toBe(true);
    await client.download(id, "model/final.pt", `${dir}/`);
    expect(existsSync(join(dir, "final.pt"))).toBe(true);
    const got = await client.download(id, "results/", join(dir, "out"));
    expect(got.map((f) => f.dest)).toEqual([join(dir, "out", "a.json"), join(dir, "out", "deep", "b.csv")]);
    expect(readFileSync(join(dir, "out", "deep", "b.csv")).equals(files["results/deep/b.csv"])).toBe(true);
  });

  it("a missing path is a typed 404; bytes that do not match the listed sha256 are not kept", async () => {
    const w = await createWorld();
    const bytes = randomBytes(2000);
    const id = await jobWithOutputs(w, { "model/final.pt": bytes });
    const client = clientOf(w);
    const dir = mkdtempSync(join(tmpdir(), "sg-client-dl-"));
    const missing = await client.download(id, "results/", dir).catch((e) => e);
    expect(missing).toBeInstanceOf(SlurmgateError);
    expect(missing.status).toBe(404);
    // A gateway (or proxy) that hands back other bytes than it lists.
    const lying = createClient({
      baseUrl: "http://gateway.test",
      token: w.tokens.alice,
      fetch: async (req) => {
        const res = await w.app.request(req);
        if (!req.url.includes("/files/")) {
          return res;
        }
        const body = Buffer.from(await res.arrayBuffer());
        body[0] = (body[0]! + 1) % 256;
        return new Response(body, { status: res.status, headers: res.headers });
      },
    });
    const err = await lying.download(id, "model/final.pt", join(dir, "final.pt")).catch((e) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("client downloads by attempt", () => {
  it("lists and downloads the newest attempt by default, an earlier one by `attempt`; an unknown one is a typed 404", async () => {
    const w = await createWorld();
    const first = Buffer.from('{"try":1}');
    const second = Buffer.from('{"try":2,"ok":true}');
    const id = await retriedOutputs(w, first, second);
    const client = clientOf(w);
    expect(await client.listFiles(id)).toEqual([
      { path: "results/m.json", size: second.length, sha256: sha(second), attempt: 2 },
    ]);
    expect((await client.listFiles(id, { attempt: 1 })).map((f) => f.sha256)).toEqual([sha(first)]);
    const dir = mkdtempSync(join(tmpdir(), "sg-client-dl-"));
    await client.download(id, "results/", join(dir, "newest"));
    expect(readFileSync(join(dir, "newest", "m.json")).equals(second)).toBe(true);
    const got = await client.download(id, "results/m.json", join(dir, "one.json"), { attempt: 1 });
    expect(got).toMatchObject([{ attempt: 1 }]);
    expect(readFileSync(join(dir, "one.json")).equals(first)).toBe(true);
    const unknown = await client.listFiles(id, { attempt: 7 }).catch((e) => e);
    expect(unknown).toBeInstanceOf(SlurmgateError);
    expect(unknown.status).toBe(404);
    expect(unknown.field).toBe("query.attempt");
  });
});
