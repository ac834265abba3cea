/**
 * Browsing and outputs through agents that walk with `find -P` as the job's account, on real Slurm:
 * a site agent run as a service account with the documented sudoers rule (acting as sg-alice), and
 * an agent over SSH (loopback sshd). Listing, head and tail return the bytes on disk; outputs come
 * back byte-identical; a symlink to /etc/passwd the job planted, as a file or as a parent directory,
 * is listed as a symlink, never read and never uploaded; another user's 0600 file stays shut.
 */
import { createHash } from "node:crypto";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { type AgentProcess, type E2E, slurmClusters, sshAgentEnv, startE2E } from "./harness.ts";
import { type PosixUser, type UserAgent, ensurePosixUser, ensureSudoRule, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

let e2e: E2E;
const out = mkdtempSync(join(tmpdir(), "sg-browse-modes-"));

beforeAll(async () => {
  e2e = await startE2E({ SLURMGATE_BROWSE_SECONDS: "15" });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  rmSync(out, { recursive: true, force: true });
});

type Entry = { name: string; type: string; size: number };
type Slice = { size: number; offset: number; data: string; truncated: boolean };

async function get<T>(id: string, route: string, query: Record<string, string>) {
  const res = await fetch(`${e2e.url}/v1/jobs/${id}/${route}?${new URLSearchParams(query)}`, {
    headers: { authorization: `Bearer ${e2e.alice}` },
  });
  return { status: res.status, body: (await res.json()) as T & { detail?: string; field?: string } };
}

const SCRIPT = [
  "mkdir -p results/deep out",
  "printf 'hello browse\\n' > results/a.txt",
  "head -c 100000 /dev/urandom > big.bin",
  "printf '{\"x\":1}\\n' > out/m.json",
  "ln -s /etc/passwd passwd-link",
  "ln -s /etc etc-dir",
  "ln -s /etc/passwd out/passwd.json",
  "mkfifo fifo",
].join("\n");
const OUTPUTS = ["big.bin", "out/*.json", "etc-dir/passwd"];
const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

/** Runs the job, then browses it and checks its outputs; `dir` is where it lands on disk. */
async function exercise(dirOf: (id: string) => string, planted?: (dir: string) => void) {
  const job = await e2e.submit(e2e.alice, { name: "browse-mode", cluster: "alpha", script: SCRIPT, outputs: OUTPUTS });
  const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
  expect(done.state, done.reason ?? "").toBe("completed");
  expect(done.reason).toContain("out/passwd.json (a symlink (never followed))");
  const dir = dirOf(job.id);
  const big = readFileSync(join(dir, "big.bin"));

  // Outputs: byte-identical, and neither symlink (as a file, or through a parent) uploaded.
  const client = createClient({ baseUrl: e2e.url, token: e2e.alice, retry: { attempts: 1 } });
  expect(await client.listFiles(job.id)).toEqual([
    { path: "big.bin", size: 100_000, sha256: sha(big), attempt: 1 },
    { path: "out/m.json", size: 8, sha256: sha(Buffer.from('{"x":1}\n')), attempt: 1 },
  ]);
  await client.download(job.id, "big.bin", join(out, `${job.id}.bin`));
  expect(readFileSync(join(out, `${job.id}.bin`)).equals(big)).toBe(true);

  // Browsing: listing as lstat sees it, real first and last bytes.
  const listed = await get<{ entries: Entry[] }>(job.id, "dir", {});
  expect(listed.status, JSON.stringify(listed.body)).toBe(200);
  const byName = new Map(listed.body.entries.map((e) => [e.name, e.type]));
  expect(Object.fromEntries(byName)).toMatchObject({
    "big.bin": "file",
    results: "dir",
    "passwd-link": "symlink",
    "etc-dir": "symlink",
    fifo: "other",
  });
  const nested = await get<{ entries: Entry[] }>(job.id, "dir", { path: "./results/" });
  expect(nested.body.entries.map((e) => [e.name, e.type])).toEqual([
    ["a.txt", "file"],
    ["deep", "dir"],
  ]);
  const head = await get<Slice>(job.id, "head", { path: "big.bin", bytes: "1000" });
  expect(head.body).toMatchObject({ size: 100_000, offset: 0, truncated: true });
  expect(Buffer.from(head.body.data, "base64").equals(big.subarray(0, 1000))).toBe(true);
  const tail = await get<Slice>(job.id, "tail", { path: "big.bin", bytes: "1000" });
  expect(tail.body).toMatchObject({ size: 100_000, offset: 99_000, truncated: true });
  expect(Buffer.from(tail.body.data, "base64").equals(big.subarray(99_000))).toBe(true);

  planted?.(dir);
  const passwd = readFileSync("/etc/passwd", "utf8");
  const refusals: [string, string, string][] = [
    ["head", "passwd-link", "is a symlink"],
    ["tail", "passwd-link", "is a symlink"],
    ["head", "etc-dir/passwd", "is a symlink"],
    ["dir", "etc-dir", "is a symlink"],
    ["head", "out/passwd.json", "is a symlink"],
    ["head", "fifo", "not a regular file"],
    ["head", "results", "a directory"],
    ["dir", "big.bin", "not a directory"],
    ["dir", "nothing-here", "does not exist"],
    ...(planted ? ([["head", "bobs.txt", "not readable by the job's account"]] as [string, string, string][]) : []),
  ];
  for (const [route, path, why] of refusals) {
    const res = await get<object>(job.id, route, { path });
    expect(res.status, `${route} ${path}: ${JSON.stringify(res.body)}`).toBe(422);
    expect(res.body.detail, `${route} ${path}`).toContain(why);
    expect(JSON.stringify(res.body)).not.toContain(passwd.slice(0, 20));
    expect(JSON.stringify(res.body)).not.toContain("bob's secret");
  }
  for (const path of ["../", "/etc"]) {
    expect((await get<object>(job.id, "dir", { path })).status).toBe(422);
  }
}

describe("a site agent as a service account with sudo", () => {
  let agent: UserAgent;
  let alice: PosixUser;
  let bob: PosixUser;
  let root: string;
  beforeAll(async () => {
    alice = ensurePosixUser("sg-alice");
    bob = ensurePosixUser("sg-bob");
    const svc = ensurePosixUser("sg-svc");
    ensureSudoRule("sg-svc", ["sg-alice", "sg-bob"]);
    root = varTmpDir("sg-browse-sudo-");
    chmodSync(root, 0o1777);
    const map = `${root}.map.json`;
    writeFileSync(map, JSON.stringify({ users: { alice: "sg-alice" } }), { mode: 0o644 });
    agent = spawnAgentAs(
      svc,
      e2e.agentEnv("alpha", {
        SLURMGATE_USER_MAP: map,
        SLURMGATE_RUN_AS: "sudo",
        SLURMGATE_SHARED_ROOTS: root,
        HOME: `/home/${svc.name}`,
        USER: svc.name,
        SLURMGATE_STATE_FILE: `/home/${svc.name}/agent-browse-${Date.now()}.json`,
      }),
    );
    await e2e.waitClustersAlive(120_000, ["alpha"]).catch((err: Error) => {
      throw new Error(`${err.message}\nagent output:\n${agent.logs()}`);
    });
  }, 200_000);

  afterAll(async () => {
    await agent?.stop();
  });

  it("browses Alice's 0700 job directory as sg-alice and brings its outputs back", async () => {
    await exercise(
      (id) => join(root, "alice", id),
      (dir) => {
        // Bob's private file, dropped into Alice's directory: not Alice's to read.
        writeFileSync(join(dir, "bobs.txt"), "bob's secret", { mode: 0o600 });
        chownSync(join(dir, "bobs.txt"), bob.uid, bob.gid);
        expect(alice.uid).not.toBe(bob.uid);
      },
    );
  }, 400_000);
});

describe("an agent over SSH", () => {
  let agent: AgentProcess;
  beforeAll(async () => {
    agent = e2e.startAgent("alpha", sshAgentEnv());
    await e2e.waitClustersAlive(120_000, ["alpha"]);
  }, 200_000);

  afterAll(async () => {
    await agent?.stop();
  });

  it("browses on the login node and brings outputs back, following no symlink", async () => {
    await exercise((id) => join(slurmClusters().alpha.sharedRoot, "alice", id));
  }, 400_000);
});
