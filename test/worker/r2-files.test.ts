/**
 * Files on the Worker, in real workerd with wrangler's local R2 (miniflare persists it under the
 * target's state directory, no network): uploads streamed into R2 by hash (small ones whole, large
 * ones as a multipart upload), compose, dedup, quotas and hostile requests, the agent's input
 * download, job outputs whole and by Range, and an object damaged inside R2 never served as good.
 */
import { createClient as createFileClient } from "@libsql/client";
import { createClient } from "@libsql/client/web";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PART_BYTES } from "../../gateway/files/r2-blob-store.ts";
import { createWorkerDeps } from "../../gateway/worker-deps.ts";
import { sampleInventory } from "../helpers/gateway.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const MAX_FILE = PART_BYTES + 2 * 1024 * 1024;

let target: WorkerTarget;
let user: string;
let agent: string;

async function call<T = Record<string, unknown>>(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(target.baseUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
}

async function upload(
  bytes: Uint8Array | ReadableStream<Uint8Array> | string,
  headers: Record<string, string> = {},
  token = user,
) {
  const res = await fetch(`${target.baseUrl}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", ...headers },
    body: bytes as BodyInit,
    ...(bytes instanceof ReadableStream ? { duplex: "half" } : {}),
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function bytesOf(path: string, token: string, headers: Record<string, string> = {}) {
  const res = await fetch(target.baseUrl + path, { headers: { authorization: `Bearer ${token}`, ...headers } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** A job leased to agent "a1"; answers its id and epoch. */
async function leasedJob(extra: Record<string, unknown>) {
  const job = await call<{ id: string }>("POST", "/v1/jobs", user, { name: "f", command: ["true"], ...extra });
  expect(job.status, JSON.stringify(job.body)).toBe(201);
  const lease = await call<{ leases: { jobId: string; epoch: number }[] }>("POST", "/v1/agent/lease", agent, {
    agentId: "a1",
    wait: 0,
  });
  const mine = lease.body.leases.find((l) => l.jobId === job.body.id);
  expect(mine, JSON.stringify(lease.body)).toBeDefined();
  return { id: job.body.id, epoch: mine!.epoch };
}

async function putOutput(id: string, epoch: number, path: string, bytes: Uint8Array) {
  const query = new URLSearchParams({ epoch: String(epoch), path, sha256: sha(bytes), size: String(bytes.length) });
  const res = await fetch(`${target.baseUrl}/v1/agent/jobs/${id}/outputs?${query}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${agent}`, "content-type": "application/octet-stream" },
    body: bytes as BodyInit,
  });
  expect(res.status, await res.text()).toBe(200);
}

/** Reads a whole download to its end: what arrived, and whether the transfer broke. */
async function drain(path: string) {
  const res = await fetch(target.baseUrl + path, { headers: { authorization: `Bearer ${user}` } });
  let arrived = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      arrived += chunk.byteLength;
    }
    return { status: res.status, arrived, broken: false };
  } catch {
    return { status: res.status, arrived, broken: true };
  }
}

/** Files under miniflare's persisted R2 whose bytes are exactly `bytes`. */
function storedCopies(bytes: Uint8Array): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
      } else if (statSync(path).size === bytes.length && readFileSync(path).equals(bytes)) {
        found.push(path);
      }
    }
  };
  walk(target.stateDir);
  return found;
}

/** The states of miniflare's multipart uploads (0 in progress, 1 completed, 2 aborted), from its own SQLite. */
async function multipartStates(): Promise<number[]> {
  const states: number[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".sqlite") ? [join(dir, e.name)] : [],
    );
  for (const file of walk(target.stateDir)) {
    const db = createFileClient({ url: `file:${file}` });
    try {
      const rs = await db.execute("SELECT state FROM _mf_multipart_uploads");
      states.push(...rs.rows.map((row) => Number(row.state)));
    } catch {
      // another simulated service's database
    } finally {
      db.close();
    }
  }
  return states;
}

beforeAll(async () => {
  target = await startWorkerTarget({
    vars: {
      SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
      SLURMGATE_FILE_MAX_BYTES: String(MAX_FILE),
      SLURMGATE_USER_FILES_BYTES: String(MAX_FILE + 1024 * 1024),
    },
  });
  const admin = target.adminToken;
  expect((await call("POST", "/v1/admin/users", admin, { name: "alice" })).status).toBe(200);
  const cluster = { name: "alpha", sharedRoots: ["/shared"] };
  expect((await call("POST", "/v1/admin/clusters", admin, cluster)).status).toBeLessThan(300);
  expect((await call("POST", "/v1/admin/grants", admin, { user: "alice", cluster: "alpha" })).status).toBeLessThan(300);
  user = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "user", user: "alice" })).body.token;
  agent = (await call<{ token: string }>("POST", "/v1/admin/tokens", admin, { kind: "agent", cluster: "alpha" })).body
    .token;
  expect((await call("PUT", "/v1/agent/inventory", agent, sampleInventory("a100"))).status).toBeLessThan(300);
}, 90_000);

afterAll(async () => {
  await target?.close();
});

describe("files on the Worker (R2)", () => {
  it("uploads by hash, dedups, HEADs and forgets; the agent holding the job downloads the bytes", async () => {
    const bytes = randomBytes(100_000);
    const first = await upload(bytes);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toEqual({ file: `sha256:${sha(bytes)}`, size: bytes.length });
    const again = await upload(bytes, { "x-content-sha256": first.body.file });
    expect(again.body).toEqual(first.body);
    // Dedup: R2 holds the bytes once.
    expect(storedCopies(bytes)).toHaveLength(1);
    const head = await fetch(`${target.baseUrl}/v1/files/${first.body.file}`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${user}` },
    });
    expect(head.status).toBe(200);

    const { id } = await leasedJob({ cluster: "alpha", inputs: [{ file: first.body.file, path: "in.bin" }] });
    const got = await bytesOf(`/v1/agent/files/${first.body.file}?agentId=a1`, agent);
    expect(got.status).toBe(200);
    expect(sha(got.bytes)).toBe(sha(bytes));
    expect((await bytesOf(`/v1/agent/files/${first.body.file}?agentId=a2`, agent)).status).toBe(404);
    expect((await call("POST", `/v1/jobs/${id}/cancel`, user)).status).toBeLessThan(300);

    const scratch = await upload("forget me");
    expect((await call("DELETE", `/v1/files/${scratch.body.file}`, user)).status).toBe(204);
    expect((await call("GET", `/v1/files/${scratch.body.file}`, user)).status).toBe(404);
  });

  it("a file over one R2 part goes up in parts; compose joins uploads into a verified whole", async () => {
    const big = randomBytes(PART_BYTES + 123_457);
    const stored = await upload(big);
    expect(stored.status, JSON.stringify(stored.body)).toBe(201);
    expect(stored.body.file).toBe(`sha256:${sha(big)}`);
    expect(storedCopies(big)).toHaveLength(1);
    expect((await call("DELETE", `/v1/files/${stored.body.file}`, user)).status).toBe(204);

    const parts = [randomBytes(70_000), randomBytes(30_001)];
    const refs = [];
    for (const part of parts) {
      refs.push((await upload(part)).body.file);
    }
    const whole = Buffer.concat(parts);
    const composed = await call<{ file: string; size: number }>("POST", "/v1/files/compose", user, {
      parts: refs,
      sha256: `sha256:${sha(whole)}`,
    });
    expect(composed.status, JSON.stringify(composed.body)).toBe(201);
    expect(composed.body).toEqual({ file: `sha256:${sha(whole)}`, size: whole.length });
    const { id } = await leasedJob({ cluster: "alpha", inputs: [{ file: composed.body.file, path: "whole.bin" }] });
    expect((await bytesOf(`/v1/agent/files/${composed.body.file}?agentId=a1`, agent)).bytes.equals(whole)).toBe(true);
    const wrong = await call("POST", "/v1/files/compose", user, { parts: [refs[1]], sha256: `sha256:${sha("x")}` });
    expect(wrong.status).toBe(422);
    await call("POST", `/v1/jobs/${id}/cancel`, user);
    await call("DELETE", `/v1/files/${composed.body.file}`, user);
  });

  it("an upload whose client vanishes after more than a part keeps nothing: its multipart upload is aborted, no claim", async () => {
    const sent = randomBytes(PART_BYTES + 1024 * 1024);
    const abort = new AbortController();
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (offset >= sent.length) {
          // Everything is out; the client then dies instead of ending the body.
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          abort.abort();
          return;
        }
        controller.enqueue(sent.subarray(offset, offset + 256 * 1024));
        offset += 256 * 1024;
      },
    });
    const outcome = await fetch(`${target.baseUrl}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${user}`, "content-type": "application/octet-stream" },
      body,
      duplex: "half",
      signal: abort.signal,
    } as RequestInit).then(
      (res) => res.status,
      () => "cut",
    );
    expect(outcome).toBe("cut");
    // The Worker notices the cut and aborts the multipart upload it had begun.
    const deadline = Date.now() + 10_000;
    let uploads = await multipartStates();
    while (uploads.includes(0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      uploads = await multipartStates();
    }
    expect(uploads).toContain(2); // ABORTED: a part had gone up
    expect(uploads).not.toContain(0); // none left IN_PROGRESS
    expect((await call("GET", `/v1/files/sha256:${sha(sent)}`, user)).status).toBe(404);
  });

  it("refuses a wrong content type (415), an oversized file (413, declared or streamed), a quota overrun and a bad hash", async () => {
    const typed = await fetch(`${target.baseUrl}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${user}`, "content-type": "text/csv" },
      body: "a,b\n",
    });
    expect(typed.status).toBe(415);
    expect(typed.headers.get("content-type")).toMatch(/^application\/problem\+json/);

    const over = await upload(new Uint8Array(MAX_FILE + 1));
    expect(over.status).toBe(413);
    expect(over.body.field).toBe("body");
    // Streamed with no length: refused once the cap is passed. workerd may answer 413 or cut the
    // connection while the client is still sending; either way nothing is stored.
    const streamed = randomBytes(MAX_FILE + 1);
    const outcome = await upload(new Blob([streamed]).stream()).then(
      (res) => res.status,
      () => "cut",
    );
    expect([413, "cut"]).toContain(outcome);
    expect(storedCopies(streamed)).toHaveLength(0);

    const held = await upload(randomBytes(MAX_FILE));
    expect(held.status).toBe(201);
    const quota = await upload(randomBytes(2 * 1024 * 1024));
    expect(quota.status).toBe(413);
    expect(quota.body.field).toBe("quota.bytes");
    await call("DELETE", `/v1/files/${held.body.file}`, user);

    const badHash = await upload("x", { "x-content-sha256": "sha256:not-hex" });
    expect(badHash.status).toBe(422);
    expect(badHash.body.field).toBe("header.x-content-sha256");
    const mismatch = await upload("x", { "x-content-sha256": `sha256:${sha("y")}` });
    expect(mismatch.status).toBe(422);
    expect(storedCopies(Buffer.from("x"))).toHaveLength(0);
    expect((await call("GET", "/v1/files/sha256:..%2F..%2Fetc", user)).status).toBe(404);
    expect((await bytesOf("/v1/agent/files/sha256:zz?agentId=a1", agent)).status).toBe(404);
  });

  it("serves a job's output whole and by Range; an object damaged in R2 breaks the whole download and is not served", async () => {
    const bytes = randomBytes(300_000);
    const { id, epoch } = await leasedJob({ cluster: "alpha", outputs: ["out/*.bin"] });
    await putOutput(id, epoch, "out/a.bin", bytes);
    const path = `/v1/jobs/${id}/files/out/a.bin`;
    const whole = await bytesOf(path, user);
    expect(whole.status).toBe(200);
    expect(sha(whole.bytes)).toBe(sha(bytes));
    expect(whole.headers.get("x-content-type-options")).toBe("nosniff");
    const ranged = await bytesOf(path, user, { range: "bytes=1000-1999" });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 1000-1999/${bytes.length}`);
    expect(ranged.bytes.equals(bytes.subarray(1000, 2000))).toBe(true);
    const tail = await bytesOf(path, user, { range: "bytes=-10" });
    expect(tail.bytes.equals(bytes.subarray(bytes.length - 10))).toBe(true);
    // The verification is kept on the blob's row, not in this isolate: every isolate, and the
    // Worker after a restart, reads the same record.
    const db = createClient({ url: target.database.url, authToken: target.dbAuthToken });
    const rs = await db.execute({
      sql: "SELECT verified_at, verified_version FROM blobs WHERE sha256 = ?",
      args: [sha(bytes)],
    });
    db.close();
    expect(Number(rs.rows[0]?.verified_at)).toBeGreaterThan(0);
    expect(String(rs.rows[0]?.verified_version ?? "")).not.toBe("");

    const copies = storedCopies(bytes);
    expect(copies).toHaveLength(1);
    const damaged = Buffer.from(bytes);
    damaged[250_000] = (damaged[250_000]! + 1) % 256;
    writeFileSync(copies[0]!, damaged);
    const broken = await drain(path);
    expect(broken.broken).toBe(true);
    expect(broken.arrived).toBeLessThan(bytes.length);
    const after = await call<{ detail: string }>("GET", path, user);
    expect(after.status).toBe(500);
    expect(after.body.detail).toContain("is missing");
    expect((await bytesOf(path, user, { range: "bytes=0-9" })).status).toBe(500);
  });
});

describe("worker wiring", () => {
  it("the cron collects a forgotten blob from R2 on the tenth minute, and leaves it alone in between", async () => {
    const bytes = randomBytes(40_000);
    const ref = (await upload(bytes)).body.file as string;
    expect((await call("DELETE", `/v1/files/${ref}`, user)).status).toBe(204);
    // Age the blob instead of waiting out SLURMGATE_FILES_RETENTION_SECONDS.
    const direct = createClient({ url: target.database.url, authToken: target.dbAuthToken });
    await direct.execute({ sql: "UPDATE blobs SET created_at = 1 WHERE sha256 = ?", args: [ref.slice(7)] });
    direct.close();
    const cron = (minute: number) =>
      fetch(`${target.baseUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*&time=${minute * 60_000}`);
    expect((await cron(1)).status).toBe(200);
    expect(storedCopies(bytes)).toHaveLength(1);
    expect((await cron(10)).status).toBe(200);
    expect(storedCopies(bytes)).toHaveLength(0);
  });

  it("without the R2 binding, storage refuses and names the binding (file routes answer 503)", async () => {
    const deps = createWorkerDeps({ LIBSQL_URL: "http://127.0.0.1:1" });
    await expect(deps.blobs.put(new Blob(["x"]).stream(), { maxBytes: 10 })).rejects.toThrow(/SLURMGATE_FILES/);
  });
});
