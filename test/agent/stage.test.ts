/**
 * `slurmgate agent stage` on real files, through the real CLI (bin/slurmgate.mjs): what is staged,
 * what is refused (symlinks out of SOURCE, `..` names, a cache root outside the shared roots), and
 * a stage SIGKILLed half-way that leaves nothing listed and lets the next run succeed.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { createSshExecutor } from "../../agent/executor/ssh.ts";
import type { Executor } from "../../agent/executor/types.ts";
import {
  executorCacheReader,
  listCaches,
  localCacheReader,
  removeCache,
  resolveJobCaches,
  stageCache,
} from "../../agent/stage.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { BIN, runCli } from "../cli/support.ts";
import { renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { JobSpec } from "../../schemas/job.ts";

const base = mkdtempSync(join(tmpdir(), "sg-stage-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let shared: string;
let cacheRoot: string;
let env: Record<string, string>;
let n = 0;

beforeEach(() => {
  n += 1;
  shared = join(base, `shared-${n}`);
  cacheRoot = join(shared, "cache");
  mkdirSync(cacheRoot, { recursive: true });
  env = { SLURMGATE_SHARED_ROOTS: shared, SLURMGATE_CACHE_ROOT: cacheRoot };
});

function model(dir: string) {
  mkdirSync(join(dir, "tokenizer"), { recursive: true });
  writeFileSync(join(dir, "config.json"), '{"model_type":"llama"}');
  writeFileSync(join(dir, "tokenizer", "vocab.txt"), "a\nb\n");
  return dir;
}

const stage = (...args: string[]) => runCli(["agent", "stage", ...args], { env });

describe("slurmgate agent stage", () => {
  it("stages a model directory (file:// URL) and an image, lists them, and removes one", async () => {
    const src = model(join(base, `m-${n}`));
    const sif = join(base, `vllm-${n}.sif`);
    writeFileSync(sif, Buffer.alloc(4096, 7));
    const a = await stage(pathToFileURL(src).href, "llama-3.1-8b");
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    expect((await stage(sif, "vllm", "--kind", "image")).code).toBe(0);
    expect(readFileSync(join(cacheRoot, "models/llama-3.1-8b/tokenizer/vocab.txt"), "utf8")).toBe("a\nb\n");
    expect(readFileSync(join(cacheRoot, "images/vllm.sif"))).toEqual(Buffer.alloc(4096, 7));
    const listed = await stage("--list");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^images\/vllm\t4096 B\t\d{4}-.*\nmodels\/llama-3\.1-8b\t/);
    const entries = await listCaches(cacheRoot);
    expect(entries.map((e) => [e.name, e.bytes])).toEqual([
      ["images/vllm", 4096],
      ["models/llama-3.1-8b", 26],
    ]);
    // What the agent checks at lease time sees the same two, and nothing else.
    const ex = createLocalExecutor();
    expect(await resolveJobCaches(ex, cacheRoot, ["models/llama-3.1-8b", "images/vllm"])).toEqual({
      paths: [
        { ref: "models/llama-3.1-8b", path: join(cacheRoot, "models/llama-3.1-8b") },
        { ref: "images/vllm", path: join(cacheRoot, "images/vllm.sif") },
      ],
    });
    expect((await stage("--remove", "models/llama-3.1-8b")).code).toBe(0);
    expect((await listCaches(cacheRoot)).map((e) => e.name)).toEqual(["images/vllm"]);
    expect(await resolveJobCaches(ex, cacheRoot, ["models/llama-3.1-8b"])).toMatchObject({
      missing: "models/llama-3.1-8b",
    });
    const again = await stage("--remove", "models/llama-3.1-8b");
    expect([again.code, again.stderr]).toEqual([1, "slurmgate agent stage: models/llama-3.1-8b is not staged\n"]);
  });

  it("restages a name over the old copy, and copies a symlink to a file inside SOURCE as a file", async () => {
    const src = model(join(base, `m-${n}`));
    expect((await stage(src, "org/m")).code).toBe(0);
    writeFileSync(join(src, "weights.bin"), "new");
    symlinkSync("weights.bin", join(src, "alias.bin"));
    expect((await stage(src, "org/m")).code).toBe(0);
    expect(readFileSync(join(cacheRoot, "models/org/m/alias.bin"), "utf8")).toBe("new");
    expect((await listCaches(cacheRoot)).map((e) => e.name)).toEqual(["models/org/m"]);
    expect(readdirSync(join(cacheRoot, "models/org"))).toEqual(["m"]);
    // `org` and `org/m` cannot both be models: neither is written into or over the other.
    await expect(stageCache({ cacheRoot, source: src, name: "org" })).rejects.toThrow(/holds other staged models/);
    await stageCache({ cacheRoot, source: src, name: "solo" });
    await expect(stageCache({ cacheRoot, source: src, name: "solo/m" })).rejects.toThrow(/is a staged model/);
    expect((await listCaches(cacheRoot)).map((e) => e.name)).toEqual(["models/org/m", "models/solo"]);
  });

  it("refuses a symlink pointing out of SOURCE and leaves nothing behind", async () => {
    const secret = join(base, `secret-${n}`);
    writeFileSync(secret, "not yours");
    const src = model(join(base, `m-${n}`));
    symlinkSync(secret, join(src, "tokenizer", "escape.txt"));
    const r = await stage(src, "evil");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tokenizer\/escape\.txt is a symlink pointing out of SOURCE/);
    expect(readdirSync(join(cacheRoot, "models"))).toEqual([]);
    expect(await listCaches(cacheRoot)).toEqual([]);
  });

  it("refuses names with '..', upper case or a leading dot, and a SOURCE that is a symlink", async () => {
    const src = model(join(base, `m-${n}`));
    for (const name of ["../../etc", "a/../b", "..", ".hidden", "Llama", "a/b/c", "a//b", ""]) {
      await expect(stageCache({ cacheRoot, source: src, name }), name).rejects.toThrow(/is not a cache name/);
    }
    const r = await stage(src, "../../etc");
    expect([r.code, r.stderr]).toEqual([
      1,
      expect.stringMatching(/^slurmgate agent stage: "..\/..\/etc" is not a cache name/),
    ]);
    const link = join(base, `link-${n}`);
    symlinkSync(src, link);
    await expect(stageCache({ cacheRoot, source: link, name: "x" })).rejects.toThrow(/is a symlink/);
    await expect(stageCache({ cacheRoot, source: "http://example.org/m.sif?sig=s3cret", name: "x" })).rejects.toThrow(
      /^http:\/\/example\.org\/m\.sif: only local paths, file:\/\/ and https:\/\/ URLs can be staged \(never plain http:\/\/\)$/,
    );
    await expect(removeCache(cacheRoot, "models/../x")).rejects.toThrow(/not a cache reference/);
    expect(readdirSync(cacheRoot).filter((e) => e !== "models")).toEqual([]);
  });

  it("refuses a cache root outside the shared roots, also through a symlink", async () => {
    const outside = mkdtempSync(join(base, "outside-"));
    const src = model(join(base, `m-${n}`));
    const r = await runCli(["agent", "stage", src, "x"], { env: { ...env, SLURMGATE_CACHE_ROOT: outside } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SLURMGATE_CACHE_ROOT .* outside the shared roots/);
    symlinkSync(outside, join(shared, "sneaky"));
    const viaLink = await runCli(["agent", "stage", src, "x"], {
      env: { ...env, SLURMGATE_CACHE_ROOT: join(shared, "sneaky") },
    });
    expect(viaLink.stderr).toMatch(/resolves to .*outside the shared roots/);
    expect(readdirSync(outside)).toEqual([]);
    const unset = await runCli(["agent", "stage", "--list"], { env: { SLURMGATE_SHARED_ROOTS: shared } });
    expect([unset.code, unset.stderr]).toEqual([1, expect.stringMatching(/SLURMGATE_CACHE_ROOT is not set/)]);
  });

  it("a stage SIGKILLed mid-copy leaves nothing listed, and a re-run succeeds", async () => {
    const src = join(base, `big-${n}`);
    mkdirSync(src);
    for (let i = 0; i < 400; i++) {
      writeFileSync(join(src, `shard-${String(i).padStart(4, "0")}.bin`), Buffer.alloc(256 * 1024, i));
    }
    const child = spawn(process.execPath, [BIN, "agent", "stage", src, "big"], {
      env: { ...process.env, ...env },
      stdio: "ignore",
    });
    const models = join(cacheRoot, "models");
    const started = Date.now();
    // Kill once the copy is under way: the temp entry holds some files but not all.
    for (;;) {
      const temp = (() => {
        try {
          return readdirSync(models).find((e) => e.startsWith(".stage-"));
        } catch {
          return undefined;
        }
      })();
      const copied = temp ? readdirSync(join(models, temp)).length : 0;
      if (copied > 5) {
        expect(copied).toBeLessThan(400);
        break;
      }
      expect(Date.now() - started).toBeLessThan(20_000);
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("close", r));
    expect(await listCaches(cacheRoot)).toEqual([]);
    expect((await stage("--list")).stdout).toBe("");
    expect(await resolveJobCaches(createLocalExecutor(), cacheRoot, ["models/big"])).toMatchObject({
      missing: "models/big",
    });
    const rerun = await stage(src, "big");
    expect(rerun.code).toBe(0);
    expect((await listCaches(cacheRoot)).map((e) => [e.name, e.bytes])).toEqual([["models/big", 400 * 256 * 1024]]);
    // The killed run's half copy was swept by the next one.
    expect(readdirSync(models)).toEqual(["big"]);
  }, 60_000);
});

describe("a hostile cache root", () => {
  it("lists no entry with a corrupt or foreign manifest or planted as a symlink, and the lease check refuses them", async () => {
    const outside = model(join(base, `outside-${n}`));
    const src = model(join(base, `m-${n}`));
    await stageCache({ cacheRoot, source: src, name: "good" });
    await stageCache({ cacheRoot, source: src, name: "corrupt" });
    await stageCache({ cacheRoot, source: src, name: "foreign" });
    writeFileSync(join(cacheRoot, "models/corrupt/.slurmgate-manifest.json"), "{not json");
    writeFileSync(
      join(cacheRoot, "models/foreign/.slurmgate-manifest.json"),
      JSON.stringify({ ref: "models/good", bytes: 1, stagedAt: "x" }),
    );
    writeFileSync(
      join(outside, ".slurmgate-manifest.json"),
      JSON.stringify({ ref: "models/evil", bytes: 1, stagedAt: "x" }),
    );
    symlinkSync(outside, join(cacheRoot, "models/evil"));
    expect((await listCaches(cacheRoot)).map((e) => e.name)).toEqual(["models/good"]);
    const ex = createLocalExecutor();
    expect(await resolveJobCaches(ex, cacheRoot, ["models/evil"])).toMatchObject({ missing: "models/evil" });
    expect(await resolveJobCaches(ex, null, ["models/good"])).toEqual({
      missing: "models/good",
      why: "this agent has no SLURMGATE_CACHE_ROOT",
    });
    await expect(removeCache(cacheRoot, "models/evil")).rejects.toThrow(/is a symlink/);
    expect(readdirSync(outside).sort()).toEqual([".slurmgate-manifest.json", "config.json", "tokenizer"]);
  });
});

describe("a job naming staged caches is rendered with their env and read-only binds", () => {
  const lease = (spec: Record<string, unknown>) => ({
    jobId: "job_01jd7x2k9m4q8r6t5v3w1y0zaa",
    attempt: 1,
    spec: JobSpec.parse({ name: "t", command: ["python", "eval.py"], ...spec }),
  });
  const caches = [
    { ref: "models/llama-3.1-8b", path: "/shared/cache/models/llama-3.1-8b" },
    { ref: "images/vllm", path: "/shared/cache/images/vllm.sif" },
  ];
  const envOf = (files: { name: string; data: Buffer }[]) =>
    files
      .find((f) => f.name === "env.nul")!
      .data.toString("utf8")
      .split("\0")
      .filter(Boolean);

  it("exports each cache's path and the offline switches; the job's own env still wins", () => {
    const out = renderBatchScript({
      lease: lease({ cache: caches.map((c) => c.ref), env: { TRANSFORMERS_OFFLINE: "0" } }),
      jobDir: "/shared/u/job_01jd7x2k9m4q8r6t5v3w1y0zaa",
      secretsFile: null,
      apptainerBin: "apptainer",
      caches,
    });
    expect(envOf(out.files)).toEqual([
      "HF_HUB_OFFLINE=1",
      "SLURMGATE_CACHE_IMAGES_VLLM=/shared/cache/images/vllm.sif",
      "SLURMGATE_CACHE_MODELS_LLAMA_3_1_8B=/shared/cache/models/llama-3.1-8b",
      "TRANSFORMERS_OFFLINE=0",
    ]);
    expect(out.script).toContain("sg_runtime=()");
  });

  it("binds each cache read-only into a container, and an image cache alone sets no offline switch", () => {
    const out = renderBatchScript({
      lease: lease({ cache: ["images/vllm"], container: { image: "/shared/cache/images/vllm.sif" } }),
      jobDir: "/shared/u/job_01jd7x2k9m4q8r6t5v3w1y0zaa",
      secretsFile: null,
      apptainerBin: "apptainer",
      caches: caches.slice(1),
    });
    expect(envOf(out.files)).toEqual(["SLURMGATE_CACHE_IMAGES_VLLM=/shared/cache/images/vllm.sif"]);
    expect(out.script).toContain("'--bind' '/shared/cache/images/vllm.sif:/shared/cache/images/vllm.sif:ro'");
  });

  it("refuses a cache path that is not a plain absolute path", () => {
    expect(() =>
      renderBatchScript({
        lease: lease({ cache: ["models/x"] }),
        jobDir: "/shared/u/job_01jd7x2k9m4q8r6t5v3w1y0zaa",
        secretsFile: null,
        apptainerBin: "apptainer",
        caches: [{ ref: "models/x", path: "/shared/../etc" }],
      }),
    ).toThrow(/cache\.models\/x/);
  });
});

describe("JobSpec.cache", () => {
  it("takes references only, at most 16, each once by its variable name", () => {
    const parse = (cache: unknown) => JobSpec.safeParse({ name: "t", command: ["true"], cache });
    expect(parse(["models/llama-3.1-8b", "images/org/vllm"]).success).toBe(true);
    for (const bad of [["llama"], ["models/../x"], ["models/X"], ["other/x"], ["models/a/b/c"], "models/x"]) {
      expect(parse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    expect(parse(Array.from({ length: 17 }, (_, i) => `models/m${i}`)).success).toBe(false);
    const clash = parse(["models/a-b", "models/a.b"]);
    expect(clash.success).toBe(false);
    expect(clash.error?.issues[0]).toMatchObject({
      path: ["cache", 1],
      message: expect.stringContaining("SLURMGATE_CACHE_MODELS_A_B"),
    });
  });
});

/** The loopback sshd the SSH tests use (test/ssh/sshd.sh, already up): the same files, read over SSH. */
function loopbackSsh() {
  const info = JSON.parse(
    readFileSync(join(process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test", "ssh", "ssh.json"), "utf8"),
  );
  return createSshExecutor({
    host: info.host,
    port: info.port,
    username: info.user,
    hostKey: info.hostKey,
    privateKey: readFileSync(info.key),
  });
}

describe("the inventory's cache listing through the executor (local, and over SSH)", () => {
  const ssh = loopbackSsh();
  afterAll(() => ssh.close());
  const readers: [string, () => Parameters<typeof listCaches>[1]][] = [
    ["this machine's files", () => localCacheReader],
    ["the local executor", () => executorCacheReader(createLocalExecutor())],
    ["the SSH executor", () => executorCacheReader(ssh)],
  ];

  it.each(readers)(
    "lists the same complete entries, skipping hostile ones, via %s",
    { timeout: 120_000 },
    async (_how, reader) => {
      const src = model(join(base, `m-${n}`));
      const sif = join(base, `img-${n}.sif`);
      writeFileSync(sif, "sif bytes");
      await stageCache({ cacheRoot, source: src, name: "good" });
      await stageCache({ cacheRoot, source: src, name: "org/nested" });
      await stageCache({ cacheRoot, source: sif, name: "vllm", kind: "image" });
      await stageCache({ cacheRoot, source: sif, name: "team/tool", kind: "image" });
      // Worst input: a half-written temp entry, a symlinked model and manifest, names no job can use
      // (a space, a newline, upper case), a .sif without its manifest, a manifest naming another entry.
      await stageCache({ cacheRoot, source: src, name: "linked-manifest" });
      const outside = model(join(base, `outside-${n}`));
      writeFileSync(
        join(outside, "m.json"),
        JSON.stringify({ ref: "models/linked-manifest", bytes: 1, stagedAt: "x" }),
      );
      rmSync(join(cacheRoot, "models/linked-manifest/.slurmgate-manifest.json"));
      symlinkSync(join(outside, "m.json"), join(cacheRoot, "models/linked-manifest/.slurmgate-manifest.json"));
      symlinkSync(join(cacheRoot, "models/good"), join(cacheRoot, "models/alias"));
      mkdirSync(join(cacheRoot, "models/.stage-1-abc"));
      writeFileSync(
        join(cacheRoot, "models/.stage-1-abc/.slurmgate-manifest.json"),
        JSON.stringify({ ref: "models/.stage-1-abc", bytes: 1, stagedAt: "x" }),
      );
      for (const odd of ["with space", "new\nline", "Upper"]) {
        mkdirSync(join(cacheRoot, "models", odd));
        writeFileSync(
          join(cacheRoot, "models", odd, ".slurmgate-manifest.json"),
          JSON.stringify({ ref: `models/${odd}`, bytes: 1, stagedAt: "x" }),
        );
      }
      writeFileSync(join(cacheRoot, "images/orphan.sif"), "x");
      mkdirSync(join(cacheRoot, "models/copy"));
      writeFileSync(
        join(cacheRoot, "models/copy/.slurmgate-manifest.json"),
        JSON.stringify({ ref: "models/good", bytes: 1, stagedAt: "x" }),
      );
      const listed = await listCaches(cacheRoot, reader());
      expect(listed).toEqual(await listCaches(cacheRoot, localCacheReader));
      expect(listed.map((e) => [e.name, e.bytes])).toEqual([
        ["images/team/tool", 9],
        ["images/vllm", 9],
        ["models/good", 26],
        ["models/org/nested", 26],
      ]);
    },
  );

  it.each(readers)("answers [] for a cache root with nothing staged yet via %s", async (_how, reader) => {
    expect(await listCaches(cacheRoot, reader())).toEqual([]);
  });

  it("fails, rather than answering 'none staged', when the login node cannot list the cache root", {
    timeout: 120_000,
  }, async () => {
    const src = model(join(base, `m-${n}`));
    await stageCache({ cacheRoot, source: src, name: "good" });
    const broken: Pick<Executor, "run" | "stat" | "readFile"> = {
      ...ssh,
      run: async () => ({ code: 1, stdout: "", stderr: "find: Permission denied", timedOut: false }),
    };
    await expect(listCaches(cacheRoot, executorCacheReader(broken))).rejects.toThrow(
      /cannot list .*models: find: Permission denied/,
    );
    // The same through the real SSH executor, on a directory the remote user cannot read.
    await chmod(join(cacheRoot, "models"), 0o000);
    try {
      const asRoot = process.getuid?.() === 0;
      const listing = listCaches(cacheRoot, executorCacheReader(ssh));
      await (asRoot ? expect(listing).resolves.toHaveLength(1) : expect(listing).rejects.toThrow(/cannot list/));
    } finally {
      await chmod(join(cacheRoot, "models"), 0o755);
    }
  });
});
