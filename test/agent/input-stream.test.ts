/**
 * Inputs streamed to disk, through each executor the agent can write with: this machine, a login
 * node over SSH (the loopback sshd) and a user's account through sudo (real sudo and coreutils; the
 * suite runs as root). The write lands only whole: a body that fails mid-stream, bytes that hash to
 * something else or a download cut short leave nothing at the input's path and no temp beside it,
 * and a symlink planted at the target or a parent is never written through.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { type SshExecutor, createSshExecutor } from "../../agent/executor/ssh.ts";
import type { Executor } from "../../agent/executor/types.ts";
import { createGatewayApi } from "../../agent/gateway-api.ts";
import { sudoExecutor } from "../../agent/identity/sudo.ts";
import { InputRefusal, InputUnreachable, writeInputs } from "../../agent/inputs.ts";
import { PathError } from "../../agent/paths.ts";
import { createFsBlobStore } from "../../gateway/files/fs-blob-store.ts";
import { createWorld } from "../gateway/world.ts";
import { ensurePosixUser, ensureSudoRule } from "../e2e/posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const REPO = join(import.meta.dirname, "..", "..");
const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";
const KIB = 1024;

/** Deterministic bytes: byte i is (i * 7 + seed) & 255. */
const pattern = (size: number, seed = 0) => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    b[i] = (i * 7 + seed) & 255;
  }
  return b;
};

/** `bytes` in `chunk`-sized pieces, throwing `failAfter` pieces in when it is set. */
async function* chunks(bytes: Buffer, chunk = 64 * KIB, failAfter?: number): AsyncIterable<Uint8Array> {
  let n = 0;
  for (let at = 0; at < bytes.length; at += chunk) {
    if (failAfter !== undefined && n++ === failAfter) {
      throw new Error("the body broke off");
    }
    yield bytes.subarray(at, at + chunk);
  }
}

/** A response body that passes `bytes` bytes through, then ends cleanly (`cut: "end"`) or errors. */
function cutBody(res: Response, bytes: number, cut: "error" | "end"): Response {
  const reader = res.body!.getReader();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await reader.read();
      if (next.done || sent >= bytes) {
        await reader.cancel();
        return cut === "end" ? controller.close() : controller.error(new Error("socket hang up"));
      }
      const piece = next.value.subarray(0, bytes - sent);
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
  return new Response(body, { status: res.status, headers: res.headers });
}

const open: SshExecutor[] = [];
afterAll(() => {
  for (const ex of open) {
    ex.close();
  }
});

function sshExecutor(): Executor {
  const file = join(TEST_DIR, "ssh", "ssh.json");
  if (!existsSync(file)) {
    execFileSync("bash", [join(REPO, "test/ssh/sshd.sh"), "up"], { stdio: "inherit" });
  }
  const info = JSON.parse(readFileSync(file, "utf8"));
  const ex = createSshExecutor({
    host: info.host,
    port: info.port,
    username: info.user,
    hostKey: info.hostKey,
    privateKey: readFileSync(info.key),
  });
  open.push(ex);
  return ex;
}

type Variant = { name: string; executor: () => Executor; jobDir: () => string };

const variants: Variant[] = [
  {
    name: "local",
    executor: () => createLocalExecutor(),
    jobDir: () => varTmpDir("sg-instream-local-"),
  },
  { name: "ssh", executor: sshExecutor, jobDir: () => varTmpDir("sg-instream-ssh-") },
  {
    name: "sudo",
    executor: () => sudoExecutor(createLocalExecutor(), "sg-alice", { account: "sg-svc" }),
    // The user's own 0700 job directory, as prepareJobDir makes it.
    jobDir: () => {
      const alice = ensurePosixUser("sg-alice");
      const dir = varTmpDir("sg-instream-sudo-");
      chmodSync(dir, 0o700);
      execFileSync("chown", [`${alice.uid}:${alice.gid}`, dir]);
      return dir;
    },
  },
];

/** A real in-process gateway holding alice's uploads, a leased job naming them, and the agent's API client. */
async function gateway(files: Record<string, Buffer>, wrap?: (res: Response) => Response) {
  const w = await createWorld();
  const blobDir = varTmpDir("sg-instream-blobs-");
  w.deps.blobs = await createFsBlobStore(blobDir);
  const inputs: { file: string; path: string }[] = [];
  for (const [path, bytes] of Object.entries(files)) {
    const res = await w.app.request("/v1/files", {
      method: "POST",
      headers: { authorization: `Bearer ${w.tokens.alice}`, "content-type": "application/octet-stream" },
      body: new Uint8Array(bytes),
    });
    inputs.push({ file: (await res.json()).file as string, path });
  }
  await w.submit(w.tokens.alice, { cluster: "alpha", inputs });
  await w.lease(w.tokens.alphaAgent);
  const api = createGatewayApi({
    baseUrl: "http://gateway.test",
    token: w.tokens.alphaAgent,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      const res = await w.app.request(input as Request, init);
      return wrap ? wrap(res) : res;
    }) as typeof fetch,
  });
  const blobPath = (hex: string) => join(blobDir, hex.slice(0, 2), hex.slice(2, 4), hex);
  return { inputs, blobPath, ctx: { api, agentId: "agent-1" } };
}

describe.each(variants)("streamed writes through the $name executor", (variant) => {
  it("writes a body of many chunks whole, with its mode, and leaves no temp", async () => {
    const ex = variant.executor();
    const dir = variant.jobDir();
    const bytes = pattern(3 * 1024 * KIB + 5);
    await ex.writeFileStream(join(dir, "model.bin"), chunks(bytes), 0o755);
    expect(readFileSync(join(dir, "model.bin")).equals(bytes)).toBe(true);
    expect(statSync(join(dir, "model.bin")).mode & 0o777).toBe(0o755);
    expect(readdirSync(dir)).toEqual(["model.bin"]);
    // An empty body is an empty file, not no file.
    await ex.writeFileStream(join(dir, "empty"), chunks(Buffer.alloc(0)), 0o600);
    expect(readFileSync(join(dir, "empty")).length).toBe(0);
  });

  it("pulls the body only as fast as it is written: never more than one batch ahead of the disk", async () => {
    const ex = variant.executor();
    const dir = variant.jobDir();
    const chunk = 64 * KIB;
    let pulled = 0;
    let worstAhead = 0;
    const onDisk = () =>
      readdirSync(dir)
        .filter((name) => name.endsWith(".tmp"))
        .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    async function* watched(): AsyncIterable<Uint8Array> {
      for (let i = 0; i < 192; i++) {
        worstAhead = Math.max(worstAhead, pulled - onDisk());
        pulled += chunk;
        yield pattern(chunk, i);
      }
    }
    await ex.writeFileStream(join(dir, "paced.bin"), watched(), 0o600);
    expect(statSync(join(dir, "paced.bin")).size).toBe(192 * chunk);
    // 12 MiB went through; the most held back at once is sudo's 4 MiB batch (one chunk elsewhere).
    expect(worstAhead).toBeLessThanOrEqual(4 * 1024 * KIB + chunk);
  });

  it("a body that fails mid-stream leaves the target as it was (absent or old) and no temp", async () => {
    const ex = variant.executor();
    const dir = variant.jobDir();
    const err = await ex
      .writeFileStream(join(dir, "new.bin"), chunks(pattern(1024 * KIB), 64 * KIB, 5))
      .catch((e) => e);
    expect((err as Error).message).toContain("the body broke off");
    expect(readdirSync(dir)).toEqual([]);
    await ex.writeFileStream(join(dir, "kept.bin"), chunks(Buffer.from("old")), 0o644);
    const again = await ex
      .writeFileStream(join(dir, "kept.bin"), chunks(pattern(1024 * KIB), 64 * KIB, 3))
      .catch((e) => e);
    expect(again).toBeInstanceOf(Error);
    expect(readFileSync(join(dir, "kept.bin"), "utf8")).toBe("old");
    expect(readdirSync(dir)).toEqual(["kept.bin"]);
  });
});

describe.each(variants)("job inputs streamed through the $name executor", (variant) => {
  const big = pattern(3 * 1024 * KIB + 11, 3);
  const hex = createHash("sha256").update(big).digest("hex");

  it("writes a multi-MiB input at its path, verified, with its declared mode", async () => {
    const g = await gateway({ "data/run.sh": big });
    const dir = variant.jobDir();
    await writeInputs(g.ctx, variant.executor(), dir, [{ ...g.inputs[0]!, mode: "0755" } as never]);
    const written = readFileSync(join(dir, "data/run.sh"));
    expect(createHash("sha256").update(written).digest("hex")).toBe(hex);
    expect(statSync(join(dir, "data/run.sh")).mode & 0o777).toBe(0o755);
    expect(readdirSync(join(dir, "data"))).toEqual(["run.sh"]);
  });

  it("a download cut mid-body is InputUnreachable (the lease goes back), and leaves nothing at the path", async () => {
    for (const cut of ["error", "end"] as const) {
      // The agent's API client here asks for nothing but the file.
      const g = await gateway({ "in.bin": big }, (res) => (res.ok ? cutBody(res, 1024 * KIB, cut) : res));
      const dir = variant.jobDir();
      const err = await writeInputs(g.ctx, variant.executor(), dir, g.inputs as never).catch((e) => e);
      expect(err, `${cut}: ${err}`).toBeInstanceOf(InputUnreachable);
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it("bytes that hash to something else are input_corrupt, and nothing is left", async () => {
    const g = await gateway({ "in.bin": big });
    writeFileSync(g.blobPath(hex), pattern(big.length, 4));
    const dir = variant.jobDir();
    const err = await writeInputs(g.ctx, variant.executor(), dir, g.inputs as never).catch((e) => e);
    expect(err).toBeInstanceOf(InputRefusal);
    expect((err as InputRefusal).code).toBe("input_corrupt");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("never writes through a symlink planted at the target or on the way", async () => {
    const g = await gateway({ "in.bin": big, "sub/x.bin": Buffer.from("second") });
    const dir = variant.jobDir();
    const outside = varTmpDir("sg-instream-outside-");
    chmodSync(outside, 0o777);
    writeFileSync(join(outside, "victim"), "precious", { mode: 0o666 });
    chmodSync(join(outside, "victim"), 0o666);
    symlinkSync(join(outside, "victim"), join(dir, "in.bin"));
    symlinkSync(outside, join(dir, "sub"));
    execFileSync("chown", ["-h", `${statSync(dir).uid}`, join(dir, "in.bin"), join(dir, "sub")]);
    await writeInputs(g.ctx, variant.executor(), dir, [g.inputs[0]!] as never);
    expect(lstatSync(join(dir, "in.bin")).isFile()).toBe(true);
    expect(readFileSync(join(dir, "in.bin")).equals(big)).toBe(true);
    const err = await writeInputs(g.ctx, variant.executor(), dir, [g.inputs[1]!] as never).catch((e) => e);
    expect(err).toBeInstanceOf(PathError);
    expect(readFileSync(join(outside, "victim"), "utf8")).toBe("precious");
    expect(readdirSync(outside)).toEqual(["victim"]);
    expect(readdirSync(dir).sort()).toEqual(["in.bin", "sub"]);
  });
});

it("a service account with only the documented sudoers rule streams an input as the user, with its mode", async () => {
  const svc = ensurePosixUser("sg-svc");
  ensurePosixUser("sg-alice");
  ensureSudoRule("sg-svc", ["sg-alice"]);
  const local = createLocalExecutor();
  // sudo itself runs as sg-svc, so only the rule's tools (and sudo's umask 0077) are at hand.
  const asSvc: Executor = {
    ...local,
    run: (cmd, args, opts) =>
      local.run("setpriv", [`--reuid=${svc.uid}`, `--regid=${svc.gid}`, "--init-groups", cmd, ...args], opts),
  };
  const big = pattern(5 * 1024 * KIB + 1, 9);
  const g = await gateway({ "bin/run": big });
  const dir = variants[2]!.jobDir();
  await writeInputs(g.ctx, sudoExecutor(asSvc, "sg-alice", { account: "sg-svc" }), dir, [
    { ...g.inputs[0]!, mode: "0750" } as never,
  ]);
  const written = join(dir, "bin/run");
  expect(readFileSync(written).equals(big)).toBe(true);
  expect(statSync(written).mode & 0o777).toBe(0o750);
  expect(statSync(written).uid).toBe(statSync(dir).uid);
  expect(readdirSync(join(dir, "bin"))).toEqual(["run"]);
});

it("an input whose path is refused is not downloaded: its response body is let go at once", async () => {
  let pulled = 0;
  let cancelled = false;
  const watch = (res: Response) => {
    if (!res.ok) {
      return res;
    }
    const reader = res.body!.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await reader.read();
        if (next.done) {
          controller.close();
        } else {
          pulled += next.value.length;
          controller.enqueue(next.value);
        }
      },
      async cancel() {
        cancelled = true;
        await reader.cancel();
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  const big = pattern(8 * 1024 * KIB, 5);
  const g = await gateway({ "sub/x.bin": big }, watch);
  const dir = varTmpDir("sg-instream-refused-");
  symlinkSync("/etc", join(dir, "sub"));
  const err = await writeInputs(g.ctx, createLocalExecutor(), dir, g.inputs as never).catch((e) => e);
  expect(err).toBeInstanceOf(PathError);
  expect(cancelled).toBe(true);
  expect(pulled).toBeLessThan(big.length);
});
