/**
 * Output globs are confined lexically (schema) and again on the directory itself: hostile globs
 * are refused, `*`/`?` never cross a `/`, `**` never climbs out, and on a real directory a planted
 * symlink (to /etc/passwd, to a directory outside) is named and skipped, never read. Through the
 * real gateway app: each output is read once (hashed while sent), and one rewritten while it is
 * read is skipped as changed, never listed with bytes of two versions.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { AgentContext } from "../../agent/context.ts";
import type { Executor } from "../../agent/executor/types.ts";
import { createGatewayApi } from "../../agent/gateway-api.ts";
import { sudoExecutor, sudoReads } from "../../agent/identity/sudo.ts";
import { bringBackOutputs, listJobDir, outputsNote, planOutputs } from "../../agent/outputs.ts";
import type { TrackedJob } from "../../agent/state.ts";
import { JobSpec } from "../../schemas/job.ts";
import { MAX_OUTPUT_FILE_BYTES, globMatcher, outputGlobProblem } from "../../schemas/outputs.ts";
import { ensurePosixUser } from "../e2e/posix-users.ts";
import { createWorld } from "../gateway/world.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

describe("output globs (lexical)", () => {
  it.each([
    "../*",
    "../../etc/passwd",
    "/etc/passwd",
    "results/../../x",
    "./a",
    "a//b",
    "a/",
    "",
    "a\\b",
    "**/../x",
    "a**/b",
    "[a-z]*",
    "{a,b}",
    "a\0b",
    "a\nb",
    "~/x",
    "$HOME/x",
  ])("refuses %j", (glob) => {
    expect(outputGlobProblem(glob)).toBeDefined();
    const parsed = JobSpec.safeParse({ name: "x", command: ["true"], outputs: [glob] });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(["outputs", 0]);
  });

  it("accepts the documented examples", () => {
    const parsed = JobSpec.parse({
      name: "x",
      command: ["true"],
      outputs: ["results/*.json", "model/final.pt", "**/*.csv"],
    });
    expect(parsed.outputs).toEqual(["results/*.json", "model/final.pt", "**/*.csv"]);
  });

  it("caps the number of globs", () => {
    const parsed = JobSpec.safeParse({ name: "x", command: ["true"], outputs: Array(65).fill("a") });
    expect(parsed.success).toBe(false);
  });

  it("matches within segments; ** spans whole segments only and never a '..'", () => {
    const m = globMatcher("results/*.json");
    expect(m("results/a.json")).toBe(true);
    expect(m("results/sub/a.json")).toBe(false);
    expect(m("results/.json")).toBe(true);
    expect(m("../results/a.json")).toBe(false);
    const deep = globMatcher("**/*.csv");
    expect(deep("a.csv")).toBe(true);
    expect(deep("x/y/z.csv")).toBe(true);
    expect(deep("../z.csv")).toBe(false);
    expect(deep("/etc/z.csv")).toBe(false);
    expect(deep("x/../../z.csv")).toBe(false);
    expect(globMatcher("a?c")("abc")).toBe(true);
    expect(globMatcher("a?c")("a/c")).toBe(false);
    expect(globMatcher("../*")("x")).toBe(false);
  });
});

describe("collecting outputs on a real directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "sg-outputs-"));
  const outside = mkdtempSync(join(tmpdir(), "sg-outside-"));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });
  mkdirSync(join(dir, "results"));
  writeFileSync(join(dir, "results", "a.json"), "{}");
  writeFileSync(join(dir, "results", "b.txt"), "x");
  symlinkSync("/etc/passwd", join(dir, "results", "x.json"));
  writeFileSync(join(outside, "secret.json"), "secret");
  symlinkSync(outside, join(dir, "linked"));
  mkdirSync(join(dir, "model"));
  writeFileSync(join(dir, "model", "final.pt"), Buffer.alloc(1024, 7));

  it("brings back regular matches; names symlinks; never descends into a linked directory", async () => {
    const entries = await listJobDir(createLocalExecutor({ spawners: 0 }), dir);
    expect(Array.isArray(entries)).toBe(true);
    const plan = planOutputs(
      ["results/*.json", "model/final.pt", "linked/*", "**/secret.json"],
      entries as never,
      null,
    );
    expect(plan.files).toEqual([
      { path: "model/final.pt", size: 1024 },
      { path: "results/a.json", size: 2 },
    ]);
    // linked/* and **/secret.json match nothing: find -P never enters the linked directory.
    expect(plan.skipped).toEqual([{ path: "results/x.json", why: "a symlink (never followed)" }]);
    expect(outputsNote(plan.skipped)).toBe("1 output not brought back: results/x.json (a symlink (never followed))");
  });

  it("skips, with a reason, files another account owns, too large ones, and names outside the plain set", () => {
    const plan = planOutputs(
      ["*"],
      [
        { type: "f", size: 1, uid: 0, path: "hardlink-to-shadow" },
        { type: "f", size: MAX_OUTPUT_FILE_BYTES + 1, uid: 1000, path: "huge" },
        { type: "f", size: 1, uid: 1000, path: "we ird" },
        { type: "f", size: 1, uid: 1000, path: "ok" },
      ],
      1000,
    );
    expect(plan.files).toEqual([{ path: "ok", size: 1 }]);
    expect(plan.skipped.map((s) => s.path)).toEqual(["hardlink-to-shadow", "huge", "we ird"]);
  });

  it("a directory that cannot be listed is a sentence, not an empty list", async () => {
    const result = await listJobDir(createLocalExecutor({ spawners: 0 }), join(dir, "nope"));
    expect(typeof result).toBe("string");
  });
});

describe("collecting outputs in sudo mode", () => {
  it("lists and reads as the job's account, whose 0700 directory the service account cannot enter", async () => {
    const alice = ensurePosixUser("sg-alice");
    ensurePosixUser("sg-svc");
    const local = createLocalExecutor();
    const root = varTmpDir("sg-outputs-sudo-");
    chmodSync(root, 0o1777);
    const jobDir = join(root, "alice", `job_${"c".repeat(26)}`);
    mkdirSync(join(jobDir, "results"), { recursive: true });
    const bytes = Buffer.from([0, 255, 1, 10, 13, 0]);
    writeFileSync(join(jobDir, "results", "a.bin"), bytes);
    symlinkSync("/etc/passwd", join(jobDir, "results", "p.bin"));
    symlinkSync("/etc", join(jobDir, "etc"));
    execFileSync("chown", ["-R", "-h", `${alice.uid}:${alice.gid}`, join(root, "alice")]);
    chmodSync(join(root, "alice"), 0o700);
    chmodSync(jobDir, 0o700);
    const asAlice = sudoExecutor(local, "sg-alice", { account: "sg-svc" });
    // The service account itself (root may sudo as anyone): it cannot list Alice's directory.
    const service = sudoExecutor(local, "sg-svc", { account: "sg-svc" });
    const uploads: { path: string; data: Buffer }[] = [];
    const ctx = {
      executor: sudoReads(service, root, (owner) => (owner === "alice" ? asAlice : null)),
      sudo: { as: (owner: string) => (owner === "alice" ? { executor: asAlice } : null) },
      api: {
        uploadOutput: async (upload: { path: string; body: AsyncIterable<Buffer> }) => {
          const parts: Buffer[] = [];
          for await (const part of upload.body) {
            parts.push(part);
          }
          uploads.push({ path: upload.path, data: Buffer.concat(parts) });
          return { ok: true, value: null };
        },
      },
      log: () => {},
    } as unknown as AgentContext;
    const job = { jobId: `job_${"c".repeat(26)}`, epoch: 1, owner: "alice", jobDir, outputs: ["results/*", "etc/*"] };
    const outcome = await bringBackOutputs(ctx, job as unknown as TrackedJob);
    expect(outcome).toEqual({
      done: true,
      uploaded: 1,
      skipped: [{ path: "results/p.bin", why: "a symlink (never followed)" }],
    });
    expect(uploads).toEqual([{ path: "results/a.bin", data: bytes }]);
    const unmapped = await bringBackOutputs(ctx, { ...job, owner: "bob" } as unknown as TrackedJob);
    expect(unmapped).toMatchObject({
      done: true,
      uploaded: 0,
      skipped: [{ why: expect.stringContaining("no account") }],
    });
  });
});

describe("outputs read once, through the real gateway app", () => {
  const MIB = 1024 * 1024;
  const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

  async function setup(files: Record<string, Buffer>) {
    const w = await createWorld();
    const job = await w.submit(w.tokens.alice, { cluster: "alpha", outputs: ["model/*"] });
    const epoch = (await w.lease(w.tokens.alphaAgent)).body.leases.find((l) => l.jobId === job.id)!.epoch;
    const jobDir = mkdtempSync(join(tmpdir(), "sg-outputs-once-"));
    mkdirSync(join(jobDir, "model"));
    for (const [name, bytes] of Object.entries(files)) {
      writeFileSync(join(jobDir, "model", name), bytes);
    }
    const api = createGatewayApi({
      baseUrl: "http://gw",
      token: w.tokens.alphaAgent,
      fetch: ((input: string, init: RequestInit) => w.app.request(input, init)) as typeof fetch,
    });
    const tracked = { jobId: job.id, epoch, owner: "alice", jobDir, outputs: ["model/*"] } as unknown as TrackedJob;
    const listed = async () =>
      (await w.call<{ items: unknown[] }>("GET", `/v1/jobs/${job.id}/files`, w.tokens.alice)).body.items;
    return { api, tracked, jobDir, listed, cleanup: () => rmSync(jobDir, { recursive: true, force: true }) };
  }

  it("reads each byte of each output once and the gateway lists it with the sha256 of those bytes", async () => {
    const big = randomBytes(9 * MIB);
    const small = Buffer.from("tiny");
    const { api, tracked, listed, cleanup } = await setup({ "big.bin": big, "small.bin": small });
    try {
      const local = createLocalExecutor({ spawners: 0 });
      let bytesRead = 0;
      const counting: Executor = {
        ...local,
        readFile: async (path, range) => {
          const got = await local.readFile(path, range);
          bytesRead += got?.length ?? 0;
          return got;
        },
      };
      const ctx = { executor: counting, api, log: () => {} } as unknown as AgentContext;
      expect(await bringBackOutputs(ctx, tracked)).toEqual({ done: true, uploaded: 2, skipped: [] });
      expect(bytesRead).toBe(big.length + small.length);
      expect(await listed()).toEqual([
        { path: "model/big.bin", size: big.length, sha256: sha(big), attempt: 1 },
        { path: "model/small.bin", size: small.length, sha256: sha(small), attempt: 1 },
      ]);
    } finally {
      cleanup();
    }
  });

  it("a file rewritten while it is read (other bytes, same size) is skipped as changed, never listed torn", async () => {
    const first = randomBytes(9 * MIB);
    const { api, tracked, jobDir, listed, cleanup } = await setup({ "big.bin": first });
    try {
      const local = createLocalExecutor({ spawners: 0 });
      let reads = 0;
      const rewriting: Executor = {
        ...local,
        readFile: async (path, range) => {
          const got = await local.readFile(path, range);
          if (++reads === 1) {
            // The job (or something it left running) rewrites its output while the agent reads it.
            writeFileSync(join(jobDir, "model", "big.bin"), randomBytes(first.length));
          }
          return got;
        },
      };
      const ctx = { executor: rewriting, api, log: () => {} } as unknown as AgentContext;
      expect(await bringBackOutputs(ctx, tracked)).toEqual({
        done: true,
        uploaded: 0,
        skipped: [{ path: "model/big.bin", why: "it changed while it was read" }],
      });
      expect(await listed()).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
