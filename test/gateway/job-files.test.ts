/**
 * Job outputs through the real HTTP app: the agent's streamed upload (fenced, path-checked, hash
 * verified, listed only when whole), the owner's listing and download with Range, and a stored
 * blob damaged on disk never served as good (whole reads break, ranges come only from a verified copy).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type BlobStore, hashWhole } from "../../gateway/files/blob-store.ts";
import { createFsBlobStore } from "../../gateway/files/fs-blob-store.ts";
import { REVERIFY_AFTER_MS } from "../../gateway/files/verified-read.ts";
import { createTestGateway, testClock } from "../helpers/gateway.ts";
import { type World, createWorld, expectProblemShape } from "./world.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

async function leased(w: World, outputs = ["results/*.json", "model/final.pt"]) {
  const job = await w.submit(w.tokens.alice, { cluster: "alpha", outputs });
  const lease = await w.lease(w.tokens.alphaAgent);
  const epoch = lease.body.leases.find((l) => l.jobId === job.id)!.epoch;
  return { id: job.id, epoch };
}

async function put(
  w: World,
  id: string,
  q: { epoch: number; path: string; sha256: string; size: number },
  body: Uint8Array | ReadableStream<Uint8Array>,
  token = w.tokens.alphaAgent,
) {
  const query = new URLSearchParams({ ...q, epoch: String(q.epoch), size: String(q.size) });
  const res = await w.app.request(`/v1/agent/jobs/${id}/outputs?${query}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
    body: body as BodyInit,
    ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function get(w: World, path: string, token: string, headers: Record<string, string> = {}) {
  const res = await w.app.request(path, { headers: { authorization: `Bearer ${token}`, ...headers } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe("agent upload of outputs", () => {
  it("stores, lists and replaces by path; the same bytes twice stay one row", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const bytes = randomBytes(100_000);
    const q = { epoch, path: "model/final.pt", sha256: sha(bytes), size: bytes.length };
    expect((await put(w, id, q, bytes)).status).toBe(200);
    expect((await put(w, id, q, bytes)).status).toBe(200);
    const json = Buffer.from('{"loss":0.1}');
    expect(
      (await put(w, id, { epoch, path: "results/m.json", sha256: sha(json), size: json.length }, json)).status,
    ).toBe(200);
    const list = await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice);
    expect(list.body.items).toEqual([
      { path: "model/final.pt", size: bytes.length, sha256: sha(bytes), attempt: 1 },
      { path: "results/m.json", size: json.length, sha256: sha(json), attempt: 1 },
    ]);
  });

  it("refuses a wrong hash, a short body, a path outside the globs or hostile, a stale epoch and another cluster's agent; nothing is listed", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const bytes = Buffer.from("hello");
    const ok = { epoch, path: "results/a.json", sha256: sha(bytes), size: bytes.length };
    expect(expectProblemShape(await put(w, id, { ...ok, sha256: sha("other") }, bytes), 422).field).toBe(
      "query.sha256",
    );
    expect((await put(w, id, { ...ok, size: 3 }, bytes)).status).toBe(413);
    expect((await put(w, id, { ...ok, size: 99 }, bytes)).status).toBe(422);
    for (const path of ["results/../../etc/passwd", "/etc/passwd", "other.txt", "results/a.json/x"]) {
      expect(expectProblemShape(await put(w, id, { ...ok, path }, bytes), 422).field).toBe("query.path");
    }
    expect(expectProblemShape(await put(w, id, { ...ok, epoch: epoch + 1 }, bytes), 409).code).toBe("stale_lease");
    expect((await put(w, id, ok, bytes, w.tokens.betaAgent)).status).toBe(404);
    expect((await put(w, id, ok, bytes, w.tokens.alice)).status).toBe(403);
    expect((await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice)).body.items).toEqual([]);
  });

  it("a body cut off midway (agent killed) lists nothing; the re-upload lists it once", async () => {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    const bytes = randomBytes(1_000_000);
    const q = { epoch, path: "model/final.pt", sha256: sha(bytes), size: bytes.length };
    let sent = false;
    const dying = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) {
          controller.error(new Error("agent killed"));
          return;
        }
        sent = true;
        controller.enqueue(bytes.subarray(0, 400_000));
      },
    });
    const cut = await put(w, id, q, dying).catch(() => ({ status: 0 }));
    expect(cut.status).not.toBe(200);
    expect((await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice)).body.items).toEqual([]);
    expect((await put(w, id, q, bytes)).status).toBe(200);
    const list = await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice);
    expect(list.body.items).toEqual([{ path: "model/final.pt", size: bytes.length, sha256: sha(bytes), attempt: 1 }]);
  });
});

describe("download", () => {
  async function withFile(bytes: Buffer) {
    const w = await createWorld();
    const { id, epoch } = await leased(w);
    await put(w, id, { epoch, path: "model/final.pt", sha256: sha(bytes), size: bytes.length }, bytes);
    return { w, id };
  }

  it("serves the whole file as an attachment with nosniff and the sha as ETag, by %2F or by '/'", async () => {
    const bytes = randomBytes(70_000);
    const { w, id } = await withFile(bytes);
    for (const path of [`/v1/jobs/${id}/files/model%2Ffinal.pt`, `/v1/jobs/${id}/files/model/final.pt`]) {
      const res = await get(w, path, w.tokens.alice);
      expect(res.status).toBe(200);
      expect(sha(res.bytes)).toBe(sha(bytes));
      expect(res.headers.get("content-disposition")).toBe('attachment; filename="final.pt"');
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("etag")).toBe(`"${sha(bytes)}"`);
      expect(res.headers.get("content-type")).toBe("application/octet-stream");
    }
    expect((await get(w, `/v1/jobs/${id}/files/model/final.pt`, w.tokens.admin)).status).toBe(200);
    expect((await get(w, `/v1/jobs/${id}/files/model/final.pt`, w.tokens.bob)).status).toBe(404);
    expect((await get(w, `/v1/jobs/${id}/files/model/nope.pt`, w.tokens.alice)).status).toBe(404);
  });

  it("Range: 206 with Content-Range for a-b, a-, -n; 416 past the end; a malformed or reversed range is ignored", async () => {
    const bytes = randomBytes(1000);
    const { w, id } = await withFile(bytes);
    const path = `/v1/jobs/${id}/files/model/final.pt`;
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 0],
      ["bytes=10-19", 10, 19],
      ["bytes=990-", 990, 999],
      ["bytes=-5", 995, 999],
      ["bytes=-5000", 0, 999],
      ["bytes=900-5000", 900, 999],
    ];
    for (const [range, start, end] of cases) {
      const res = await get(w, path, w.tokens.alice, { range });
      expect(res.status, range).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/1000`);
      expect(res.bytes.equals(bytes.subarray(start, end + 1))).toBe(true);
    }
    for (const range of ["bytes=1000-", "bytes=5000-6000", "bytes=-0"]) {
      const res = await get(w, path, w.tokens.alice, { range });
      expect(res.status, range).toBe(416);
      expect(res.headers.get("content-range")).toBe("bytes */1000");
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    for (const range of ["bytes=20-10", "items=0-1", "bytes=0-1,5-6", "bytes=abc"]) {
      const res = await get(w, path, w.tokens.alice, { range });
      expect(res.status, range).toBe(200);
      expect(res.bytes.length).toBe(1000);
    }
  });

  function blobFile(hex: string): string {
    return readdirSync(tmpdir())
      .filter((d) => d.startsWith("sg-blobs-"))
      .map((d) => join(tmpdir(), d, hex.slice(0, 2), hex.slice(2, 4), hex))
      .find((p) => existsSync(p))!;
  }

  /** Counts the bytes the app reads out of the store, whole or ranged. */
  function countReads(w: World): { bytes: number } {
    const inner = w.deps.blobs;
    const counter = { bytes: 0 };
    w.deps.blobs = {
      ...inner,
      rehash: (sha256) => hashWhole(w.deps.blobs, sha256),
      async get(sha256, range) {
        const got = await inner.get(sha256, range);
        if (!got) {
          return got;
        }
        const counted = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            counter.bytes += chunk.byteLength;
            controller.enqueue(chunk);
          },
        });
        return { ...got, body: got.body.pipeThrough(counted) };
      },
    };
    return counter;
  }

  /** Reads a whole download: the bytes that arrived, and whether the transfer broke. */
  async function drain(w: World, path: string) {
    const res = await w.app.request(path, { headers: { authorization: `Bearer ${w.tokens.alice}` } });
    const reader = res.body!.getReader();
    let arrived = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          return { status: res.status, arrived, broken: false };
        }
        arrived += value.byteLength;
      }
    } catch {
      return { status: res.status, arrived, broken: true };
    }
  }

  it("a whole download of a blob damaged on disk breaks short of its length; the blob is then gone, ranges refused", async () => {
    const bytes = randomBytes(200_000);
    const { w, id } = await withFile(bytes);
    const damaged = Buffer.from(bytes);
    damaged[150_000] = (damaged[150_000]! + 1) % 256;
    writeFileSync(blobFile(sha(bytes)), damaged);
    const path = `/v1/jobs/${id}/files/model/final.pt`;
    const whole = await drain(w, path);
    expect(whole.status).toBe(200);
    expect(whole.broken).toBe(true);
    expect(whole.arrived).toBeLessThan(bytes.length);
    expect(w.logs.some((l) => l.msg === "stored blob does not match its sha256; deleted")).toBe(true);
    const again = await w.call("GET", `/v1/jobs/${id}/files/model%2Ffinal.pt`, w.tokens.alice);
    expect((expectProblemShape(again, 500) as { detail?: string }).detail).toContain("is missing");
    expect((await get(w, path, w.tokens.alice, { range: "bytes=0-10" })).status).toBe(500);
  });

  it("a longer or shorter blob on disk never arrives whole either", async () => {
    for (const change of [(b: Buffer) => Buffer.concat([b, Buffer.from("x")]), (b: Buffer) => b.subarray(1)]) {
      const bytes = randomBytes(50_000);
      const { w, id } = await withFile(bytes);
      writeFileSync(blobFile(sha(bytes)), change(Buffer.from(bytes)));
      const whole = await drain(w, `/v1/jobs/${id}/files/model/final.pt`);
      expect(whole.broken).toBe(true);
      expect(whole.arrived).toBeLessThan(bytes.length);
    }
  });

  it("Range reads of a verified blob read only the range; a rewrite since, or an old verification, hashes it whole again", async () => {
    const clock = testClock();
    const w = await createWorld({}, clock);
    const { id, epoch } = await leased(w);
    const bytes = randomBytes(300_000);
    await put(w, id, { epoch, path: "model/final.pt", sha256: sha(bytes), size: bytes.length }, bytes);
    const reads = countReads(w);
    const path = `/v1/jobs/${id}/files/model/final.pt`;

    // First Range read of this process verifies the whole blob once.
    expect((await get(w, path, w.tokens.alice, { range: "bytes=0-99" })).bytes.equals(bytes.subarray(0, 100))).toBe(
      true,
    );
    expect(reads.bytes).toBe(bytes.length + 100);
    reads.bytes = 0;
    for (let i = 0; i < 5; i++) {
      const res = await get(w, path, w.tokens.alice, { range: `bytes=${i * 1000}-${i * 1000 + 9}` });
      expect(res.bytes.equals(bytes.subarray(i * 1000, i * 1000 + 10))).toBe(true);
    }
    expect(reads.bytes).toBe(50);

    // A whole download verifies too (it hashes what it sends).
    reads.bytes = 0;
    expect(sha((await get(w, path, w.tokens.alice)).bytes)).toBe(sha(bytes));
    expect(reads.bytes).toBe(bytes.length);

    clock.advance(REVERIFY_AFTER_MS);
    reads.bytes = 0;
    expect((await get(w, path, w.tokens.alice, { range: "bytes=0-9" })).status).toBe(206);
    expect(reads.bytes).toBe(bytes.length + 10);

    // Rewritten in place after verification (same length): the next Range read notices.
    const damaged = Buffer.from(bytes);
    damaged[5] = (damaged[5]! + 1) % 256;
    writeFileSync(blobFile(sha(bytes)), damaged);
    const ranged = await get(w, path, w.tokens.alice, { range: "bytes=0-9" });
    expect(ranged.status).toBe(500);
    expect(ranged.bytes.toString()).toContain("no longer matches its sha256");
  });
});

describe("outputs per attempt", () => {
  const text = (v: string) => Buffer.from(v);

  /** Attempt 1 uploads `first` and times out; the retry (attempt 2) uploads `second` at the same path. */
  async function retried(w: World, first: Buffer, second: Buffer) {
    const job = await w.submit(w.tokens.alice, {
      cluster: "alpha",
      outputs: ["results/*.json", "logs/*.txt"],
      retries: { max: 1, onTimeout: true, backoffSeconds: 0 },
    });
    const one = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === job.id)!;
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch: one.epoch, state: "running", slurmJobId: "71" }]);
    const path = "results/m.json";
    expect(
      (await put(w, job.id, { epoch: one.epoch, path, sha256: sha(first), size: first.length }, first)).status,
    ).toBe(200);
    const log = text("attempt 1 only");
    const logQ = { epoch: one.epoch, path: "logs/a.txt", sha256: sha(log), size: log.length };
    expect((await put(w, job.id, logQ, log)).status).toBe(200);
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch: one.epoch, state: "timeout" }]);
    expect(await w.job(job.id)).toMatchObject({ state: "queued", attempt: 2 });
    const two = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === job.id)!;
    // The first attempt's lease is over: its epoch can no longer add files to either attempt.
    expect(
      (await put(w, job.id, { epoch: one.epoch, path, sha256: sha(first), size: first.length }, first)).status,
    ).toBe(409);
    await w.report(w.tokens.alphaAgent, [{ jobId: job.id, epoch: two.epoch, state: "running", slurmJobId: "72" }]);
    const stored = await put(w, job.id, { epoch: two.epoch, path, sha256: sha(second), size: second.length }, second);
    expect(stored.body).toMatchObject({ path, attempt: 2 });
    return job.id;
  }

  it("a retry's file at the same path keeps the first attempt's: each downloadable by attempt, the newest listed by default", async () => {
    const w = await createWorld();
    const first = text('{"loss":0.9}');
    const second = text('{"loss":0.1,"better":true}');
    const id = await retried(w, first, second);

    const list = await w.call<{ items: unknown[]; attempts: number[] }>("GET", `/v1/jobs/${id}/files`, w.tokens.alice);
    expect(list.body).toEqual({
      items: [{ path: "results/m.json", size: second.length, sha256: sha(second), attempt: 2 }],
      attempts: [1, 2],
    });
    const earlier = await w.call("GET", `/v1/jobs/${id}/files?attempt=1`, w.tokens.alice);
    expect(earlier.body).toEqual({
      items: [
        { path: "logs/a.txt", size: 14, sha256: sha("attempt 1 only"), attempt: 1 },
        { path: "results/m.json", size: first.length, sha256: sha(first), attempt: 1 },
      ],
      attempts: [1, 2],
    });
    for (const path of [`/v1/jobs/${id}/files/results%2Fm.json`, `/v1/jobs/${id}/files/results/m.json`]) {
      const newest = await get(w, path, w.tokens.alice);
      expect(newest.bytes.equals(second)).toBe(true);
      expect(newest.headers.get("x-slurmgate-attempt")).toBe("2");
      const one = await get(w, `${path}?attempt=1`, w.tokens.alice);
      expect(one.bytes.equals(first)).toBe(true);
      expect(one.headers.get("x-slurmgate-attempt")).toBe("1");
      const ranged = await get(w, `${path}?attempt=1`, w.tokens.alice, { range: "bytes=0-5" });
      expect(ranged.status).toBe(206);
      expect(ranged.bytes.equals(first.subarray(0, 6))).toBe(true);
      expect((await get(w, `${path}?attempt=2`, w.tokens.alice)).bytes.equals(second)).toBe(true);
    }
    // A file only the earlier attempt made is not the current run's: named by attempt it is there.
    expect((await get(w, `/v1/jobs/${id}/files/logs/a.txt`, w.tokens.alice)).status).toBe(404);
    expect((await get(w, `/v1/jobs/${id}/files/logs/a.txt?attempt=1`, w.tokens.alice)).status).toBe(200);
    // Another user sees none of it, whatever attempt they name.
    expect((await w.call("GET", `/v1/jobs/${id}/files?attempt=1`, w.tokens.bob)).status).toBe(404);
    expect((await get(w, `/v1/jobs/${id}/files/results/m.json?attempt=1`, w.tokens.bob)).status).toBe(404);
  });

  it("an unknown attempt is a 404 naming it; a hostile value or unknown parameter a 422 naming the field", async () => {
    const w = await createWorld();
    const id = await retried(w, text("{}"), text("[]"));
    const paths = [
      `/v1/jobs/${id}/files`,
      `/v1/jobs/${id}/files/results%2Fm.json`,
      `/v1/jobs/${id}/files/results/m.json`,
    ];
    for (const path of paths) {
      const unknown = await w.call<{ detail: string }>("GET", `${path}?attempt=3`, w.tokens.alice);
      expect(expectProblemShape(unknown, 404).field, path).toBe("query.attempt");
      expect(unknown.body.detail).toContain("no attempt 3");
      for (const bad of ["-1", "0", "abc", "1.5", "99999999999999999999", "1e3x", ""]) {
        const res = await w.call("GET", `${path}?attempt=${bad}`, w.tokens.alice);
        expect(expectProblemShape(res, 422).field, `${path} ${bad}`).toBe("query.attempt");
      }
      const extra = await w.call("GET", `${path}?attempt=1&path=x`, w.tokens.alice);
      expect(expectProblemShape(extra, 422).field, path).toBe("query.path");
    }
  });

  it("a job with no outputs yet lists nothing and no attempts", async () => {
    const w = await createWorld();
    const { id } = await leased(w);
    const list = await w.call("GET", `/v1/jobs/${id}/files`, w.tokens.alice);
    expect(list.body).toEqual({ items: [], attempts: [] });
    expect((await get(w, `/v1/jobs/${id}/files/results/a.json`, w.tokens.alice)).status).toBe(404);
  });
});

describe("verification survives a restart", () => {
  /** Counts the bytes the app reads out of `inner`, whole or ranged. */
  function counting(inner: BlobStore): { store: BlobStore; reads: { bytes: number } } {
    const reads = { bytes: 0 };
    const store: BlobStore = {
      ...inner,
      rehash: (sha256) => hashWhole(store, sha256),
      async get(sha256, range) {
        const got = await inner.get(sha256, range);
        if (!got) {
          return got;
        }
        const counted = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            reads.bytes += chunk.byteLength;
            controller.enqueue(chunk);
          },
        });
        return { ...got, body: got.body.pipeThrough(counted) };
      },
    };
    return { store, reads };
  }

  async function verifiedThenRestarted() {
    const dir = mkdtempSync(join(tmpdir(), "sg-restart-"));
    const url = `file:${join(dir, "gw.db")}`;
    const blobDir = join(dir, "blobs");
    const first = await createWorld({}, undefined, url);
    first.deps.blobs = await createFsBlobStore(blobDir);
    const { id, epoch } = await leased(first);
    const bytes = randomBytes(200_000);
    await put(first, id, { epoch, path: "model/final.pt", sha256: sha(bytes), size: bytes.length }, bytes);
    const path = `/v1/jobs/${id}/files/model/final.pt`;
    expect((await get(first, path, first.tokens.alice, { range: "bytes=0-9" })).status).toBe(206);
    first.db.client.close();

    // A new process: same database file and blob directory, nothing carried over in memory.
    const { store, reads } = counting(await createFsBlobStore(blobDir));
    const second = await createTestGateway({}, { url, blobs: store });
    const file = join(blobDir, sha(bytes).slice(0, 2), sha(bytes).slice(2, 4), sha(bytes));
    const range = (r: string) => get(second as unknown as World, path, first.tokens.alice, { range: r });
    const done = () => {
      second.db.client.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return { second, bytes, reads, range, file, done };
  }

  it("a Range read right after the restart reads only the range", async () => {
    const { bytes, reads, range, done } = await verifiedThenRestarted();
    try {
      const res = await range("bytes=100-199");
      expect(res.status).toBe(206);
      expect(res.bytes.equals(bytes.subarray(100, 200))).toBe(true);
      expect(reads.bytes).toBe(100);
    } finally {
      done();
    }
  });

  it("a blob rewritten on disk since (another version) is hashed whole again before a range is served", async () => {
    const { bytes, reads, range, file, done } = await verifiedThenRestarted();
    try {
      writeFileSync(file, readFileSync(file));
      const same = await range("bytes=0-9");
      expect(same.status).toBe(206);
      // Whole again (the range read of the stale version may have started before it was dropped).
      expect(reads.bytes).toBeGreaterThanOrEqual(bytes.length + 10);
      const damaged = Buffer.from(bytes);
      damaged[7] = (damaged[7]! + 1) % 256;
      writeFileSync(file, damaged);
      const bad = await range("bytes=0-9");
      expect(bad.status).toBe(500);
      expect(bad.bytes.toString()).toContain("no longer matches its sha256");
    } finally {
      done();
    }
  });

  it("a garbage or future verification on the row means 'not verified', never a crash", async () => {
    const { second, bytes, reads, range, done } = await verifiedThenRestarted();
    try {
      for (const [at, version] of [
        ["'yesterday'", "verified_version"],
        ["x'00ff'", "verified_version"],
        ["9007199254740991", "verified_version"],
        ["verified_at", "NULL"],
        ["verified_at", "42"],
        ["-1", "verified_version"],
      ]) {
        await second.db.client.execute(`UPDATE blobs SET verified_at = ${at}, verified_version = ${version}`);
        reads.bytes = 0;
        const res = await range("bytes=0-9");
        expect(res.status, `${at} ${version}`).toBe(206);
        expect(res.bytes.equals(bytes.subarray(0, 10))).toBe(true);
        expect(reads.bytes, `${at} ${version}`).toBeGreaterThanOrEqual(bytes.length + 10);
      }
    } finally {
      done();
    }
  });
});
