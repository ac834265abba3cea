/**
 * The output upload's one deadline rule (UPLOAD_IDLE_MS), against a real HTTP server: an upload
 * that keeps moving, however slowly and however long past any per-MiB guess, completes; one whose
 * bytes stop moving is abandoned after the idle period (retryable: the agent tries again later).
 * The body carries the file's bytes, then the sha256 of what was read.
 */
import { createHash, randomBytes } from "node:crypto";
import { type IncomingMessage, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createGatewayApi } from "../../agent/gateway-api.ts";

const KIB = 1024;
let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function serve(handle: (req: IncomingMessage, body: () => Promise<Buffer>) => Promise<unknown> | undefined) {
  server = createServer((req, res) => {
    const body = () =>
      new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        req.on("data", (d: Buffer) => parts.push(d));
        req.on("end", () => resolve(Buffer.concat(parts)));
        req.on("error", reject);
      });
    const answer = handle(req, body);
    answer?.then(
      (json) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(json)),
      () => res.destroy(), // the agent gave up midway
    );
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

function upload(bytes: Buffer, pace: (i: number) => Promise<void>) {
  const hash = createHash("sha256");
  const slices = Math.ceil(bytes.length / (64 * KIB));
  return {
    jobId: `job_${"a".repeat(26)}`,
    epoch: 1,
    path: "model/final.pt",
    size: bytes.length,
    body: (async function* () {
      for (let i = 0; i < slices; i++) {
        await pace(i);
        const slice = bytes.subarray(i * 64 * KIB, (i + 1) * 64 * KIB);
        hash.update(slice);
        yield slice;
      }
    })(),
    sha256: () => hash.digest("hex"),
  };
}

describe("output upload deadline: abandoned only when idle", () => {
  it("an upload that keeps moving slowly, well past the old 'deadline + 1 s per MiB', completes", async () => {
    const bytes = randomBytes(2 * 1024 * KIB);
    let received: Buffer | undefined;
    const url = await serve(async (_req, body) => {
      received = await body();
      return { path: "model/final.pt", size: bytes.length, sha256: "" };
    });
    // The old rule gave this upload 0.5 s + 2 s; it takes ~3.2 s, with bytes moving every 100 ms.
    const api = createGatewayApi({ baseUrl: url, token: "t", timeoutMs: 500, uploadIdleMs: 1_000 });
    const started = Date.now();
    const result = await api.uploadOutput!(upload(bytes, () => new Promise((r) => setTimeout(r, 100))));
    expect(result, JSON.stringify(result)).toMatchObject({ ok: true });
    expect(Date.now() - started).toBeGreaterThan(2_500);
    const sha = createHash("sha256").update(bytes).digest("hex");
    expect(received?.length).toBe(bytes.length + 64);
    expect(received?.subarray(0, bytes.length).equals(bytes)).toBe(true);
    expect(received?.subarray(bytes.length).toString()).toBe(sha);
  });

  it("a gateway that stops taking bytes is given up on after the idle period, retryably", async () => {
    const bytes = randomBytes(32 * 1024 * KIB);
    // Takes the request and never reads its body nor answers: the connection stops taking bytes.
    const url = await serve(() => undefined);
    const api = createGatewayApi({ baseUrl: url, token: "t", timeoutMs: 500, uploadIdleMs: 1_000 });
    const started = Date.now();
    const result = await api.uploadOutput!(upload(bytes, async () => {}));
    const took = Date.now() - started;
    expect(result).toMatchObject({ ok: false, retryable: true });
    expect(result.ok ? "" : result.message).toContain("no bytes moved for 1 s");
    expect(took).toBeGreaterThanOrEqual(1_000);
    // The old rule would have waited 0.5 s + 32 s.
    expect(took).toBeLessThan(8_000);
  });

  it("a file read that stalls (a hung SSH read) is given up on after the idle period too", async () => {
    const url = await serve(async (_req, body) => ({ size: (await body()).length }));
    const api = createGatewayApi({ baseUrl: url, token: "t", uploadIdleMs: 1_000 });
    const started = Date.now();
    const result = await api.uploadOutput!(
      upload(randomBytes(256 * KIB), (i) => (i === 2 ? new Promise(() => {}) : Promise.resolve())),
    );
    expect(result).toMatchObject({ ok: false, retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
