/**
 * `slurmgate agent stage https://…` through the real CLI against a local HTTPS server on 127.0.0.1
 * with a self-signed certificate, trusted through NODE_EXTRA_CA_CERTS (no network): a download
 * staged with its sha256, one followed through an https redirect, and the worst inputs (a body cut
 * off mid-transfer, a wrong sha256, a redirect to http://, plain http://, a body over the cap, an
 * untrusted certificate), none of which leaves an entry, a temp file, or a secret query on screen.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { type Server, createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { listCaches } from "../../agent/stage.ts";
import { runCli } from "../cli/support.ts";

const base = mkdtempSync(join(tmpdir(), "sg-stage-https-"));
const BODY = Buffer.from(`sif-bytes-${"x".repeat(50_000)}`);
const SHA = createHash("sha256").update(BODY).digest("hex");
let server: Server;
let origin = "";
let ca = "";
let cacheRoot = "";
let env: Record<string, string> = {};
let n = 0;

beforeAll(async () => {
  ca = join(base, "cert.pem");
  const key = join(base, "key.pem");
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
    ...["-keyout", key, "-out", ca, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
  ]);
  server = createServer({ key: readFileSync(key), cert: readFileSync(ca) }, (req, res) => {
    const path = new URL(req.url ?? "/", "https://x").pathname;
    if (path === "/vllm.sif" || path === "/weights.gguf") {
      res.writeHead(200, { "content-length": BODY.length });
      res.end(BODY);
    } else if (path === "/hop") {
      res.writeHead(302, { location: `${origin}/vllm.sif` });
      res.end();
    } else if (path === "/to-http") {
      res.writeHead(302, { location: `http://127.0.0.1:${(server.address() as AddressInfo).port}/vllm.sif` });
      res.end();
    } else if (path === "/cut.sif") {
      // Promises the whole body, sends a third, then the connection dies.
      res.writeHead(200, { "content-length": BODY.length });
      res.write(BODY.subarray(0, 20_000), () => setTimeout(() => res.socket?.destroy(), 50));
    } else if (path === "/endless.sif") {
      // No Content-Length: only the byte count can stop it.
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (res.write(chunk)) {}
        res.once("drain", pump);
      };
      res.on("close", () => res.removeAllListeners("drain"));
      pump();
    } else {
      res.writeHead(404);
      res.end("no");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(base, { recursive: true, force: true });
});

beforeEach(() => {
  n += 1;
  const shared = join(base, `shared-${n}`);
  cacheRoot = join(shared, "cache");
  mkdirSync(cacheRoot, { recursive: true });
  env = { SLURMGATE_SHARED_ROOTS: shared, SLURMGATE_CACHE_ROOT: cacheRoot, NODE_EXTRA_CA_CERTS: ca };
});

const stage = (...args: string[]) => runCli(["agent", "stage", ...args], { env, timeoutMs: 60_000 });

/** Nothing half-written anywhere under the cache root: no dot-named temp entry of a stage. */
function leftovers(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (/^\.(stage|remove)-/.test(d.name)) {
        found.push(join(dir, d.name));
      } else if (d.isDirectory()) {
        walk(join(dir, d.name));
      }
    }
  };
  walk(cacheRoot);
  return found;
}

describe("staging from an https:// source", () => {
  it("downloads an image with its sha256 checked, and follows an https redirect", async () => {
    const run = await stage(`${origin}/vllm.sif`, "vllm", "--sha256", SHA);
    expect(run, run.stderr).toMatchObject({ code: 0, stdout: "staged images/vllm (50010 B)\n", stderr: "" });
    expect(readFileSync(join(cacheRoot, "images", "vllm.sif"))).toEqual(BODY);
    const hopped = await stage(`${origin}/hop#sha256=${SHA.toUpperCase()}`, "team/vllm");
    expect(hopped.code, hopped.stderr).toBe(0);
    const model = await stage(`${origin}/weights.gguf`, "tiny", "--kind", "model");
    expect(model.code, model.stderr).toBe(0);
    expect(readFileSync(join(cacheRoot, "models", "tiny", "weights.gguf"))).toEqual(BODY);
    expect((await listCaches(cacheRoot)).map((e) => [e.name, e.bytes])).toEqual([
      ["images/team/vllm", BODY.length],
      ["images/vllm", BODY.length],
      ["models/tiny", BODY.length],
    ]);
    expect(leftovers()).toEqual([]);
  }, 120_000);

  it("leaves nothing behind, and an older copy intact, when a download fails any check", async () => {
    expect((await stage(`${origin}/vllm.sif`, "vllm")).code).toBe(0);
    const before = await listCaches(cacheRoot);
    const wrong = "0".repeat(64);
    const cases: [string[], RegExp][] = [
      [[`${origin}/cut.sif`, "vllm"], /cut\.sif: the download broke off after \d+ (of 50010 )?bytes/],
      [[`${origin}/cut.sif`, "cut", "--kind", "model"], /the download broke off/],
      [
        [`${origin}/vllm.sif`, "vllm", "--sha256", wrong],
        new RegExp(`its sha256 is ${SHA}, not the ${wrong} asked for`),
      ],
      [
        [`${origin}/to-http`, "vllm"],
        /to-http redirects to http:\/\/127\.0\.0\.1:\d+\/vllm\.sif: only https:\/\/ is followed/,
      ],
      [[`${origin.replace("https", "http")}/vllm.sif`, "plain"], /only local paths, file:\/\/ and https:\/\/ URLs/],
      [[`${origin}/endless.sif`, "endless", "--max-bytes", "1000000"], /sent more than the 1000000 bytes allowed/],
      [[`${origin}/vllm.sif`, "small", "--max-bytes", "1000"], /is 50010 bytes, more than the 1000 allowed/],
      [[`${origin}/missing?token=hunter2`, "gone"], /missing answered HTTP 404$/],
      [[`${origin}/vllm.sif`, "vllm", "--sha256", "abc"], /is not 64 hex digits/],
    ];
    for (const [args, message] of cases) {
      const t0 = Date.now();
      const run = await stage(...args);
      expect(Date.now() - t0, args.join(" ")).toBeLessThan(30_000);
      expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(1);
      expect(run.stdout).toBe("");
      const lines = run.stderr.split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^slurmgate agent stage: /);
      expect(lines[0]).toMatch(message);
      expect(lines[0]).not.toContain("hunter2");
      expect(await listCaches(cacheRoot)).toEqual(before);
      expect(leftovers()).toEqual([]);
    }
    expect(readFileSync(join(cacheRoot, "images", "vllm.sif"))).toEqual(BODY);
    // A certificate nobody trusts is refused too.
    const untrusted = await runCli(["agent", "stage", `${origin}/vllm.sif`, "other"], {
      env: { ...env, NODE_EXTRA_CA_CERTS: undefined },
    });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^slurmgate agent stage: https:\/\/127\.0\.0\.1:\d+\/vllm\.sif: .*certificate/);
    expect(await listCaches(cacheRoot)).toEqual(before);
    expect(leftovers()).toEqual([]);
  }, 240_000);

  it("refuses a sha256 for a local source rather than pretend to check it", async () => {
    const run = await stage(join(base, "nowhere.sif"), "x", "--sha256", SHA);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("https:// sources only");
  });
});
