/**
 * Browsing a job's directory on real Slurm: a job writes files and plants symlinks (to /etc/passwd,
 * to /, to its own subdirectory) and a FIFO; listing, head and tail through the gateway and a real
 * agent return the bytes on disk, never follow a symlink, and come back while the agent is still
 * parked in its lease call (far sooner than its poll interval). A site agent (root) reads only what
 * the job's own account could read. (Agents over SSH and in sudo mode: browse-modes.test.ts.)
 */
import { chmodSync, chownSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SlurmgateError, createClient } from "../../client/index.ts";
import { runCli } from "../cli/support.ts";
import { type AgentProcess, type E2E, slurmClusters, startE2E } from "./harness.ts";
import { ensurePosixUser } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const POLL_WAIT_SECONDS = 20;

let e2e: E2E;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  e2e = await startE2E({ SLURMGATE_BROWSE_SECONDS: "10" });
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await e2e?.close();
});

type Entry = { name: string; type: string; size: number; mtime: string };
type Slice = { path: string; size: number; offset: number; data: string; truncated: boolean };

async function get<T>(token: string, id: string, route: string, query: Record<string, string>) {
  const res = await fetch(`${e2e.url}/v1/jobs/${id}/${route}?${new URLSearchParams(query)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as T & { detail?: string; field?: string } };
}

const SCRIPT = [
  "mkdir -p results/deep",
  "printf 'hello browse\\n' > results/a.txt",
  "head -c 100000 /dev/urandom > big.bin",
  "ln -s /etc/passwd passwd-link",
  "ln -s / root-link",
  "ln -s results results-link",
  "mkfifo fifo",
].join("\n");

describe("browsing a job directory through a local agent", () => {
  let id: string;
  let dir: string;
  beforeAll(async () => {
    agent = e2e.startAgent("alpha", { SLURMGATE_POLL_WAIT_SECONDS: String(POLL_WAIT_SECONDS) });
    await e2e.waitClustersAlive(120_000, ["alpha"]);
    const job = await e2e.submit(e2e.alice, { name: "browse-me", cluster: "alpha", script: SCRIPT });
    id = job.id;
    const done = await e2e.waitTerminal(e2e.alice, id, 90_000);
    expect(done.state, done.reason ?? "").toBe("completed");
    dir = join(slurmClusters().alpha.sharedRoot, "alice", id);
  }, 180_000);

  it("lists the directory as lstat sees it: symlinks and the FIFO as what they are", async () => {
    const { status, body } = await get<{ entries: Entry[]; truncated: boolean }>(e2e.alice, id, "dir", {});
    expect(status, JSON.stringify(body)).toBe(200);
    const byName = new Map(body.entries.map((e) => [e.name, e]));
    expect(byName.get("results")?.type).toBe("dir");
    expect(byName.get("big.bin")).toMatchObject({ type: "file", size: 100_000 });
    expect(byName.get("passwd-link")?.type).toBe("symlink");
    expect(byName.get("root-link")?.type).toBe("symlink");
    expect(byName.get("results-link")?.type).toBe("symlink");
    expect(byName.get("fifo")?.type).toBe("other");
    expect(body.entries.map((e) => e.name)).toEqual([...body.entries.map((e) => e.name)].sort());
    expect(body.truncated).toBe(false);
    const nested = await get<{ entries: Entry[] }>(e2e.alice, id, "dir", { path: "results/" });
    expect(nested.body.entries.map((e) => [e.name, e.type])).toEqual([
      ["a.txt", "file"],
      ["deep", "dir"],
    ]);
  }, 60_000);

  it("returns the real first and last bytes of a file", async () => {
    const onDisk = readFileSync(join(dir, "big.bin"));
    const head = await get<Slice>(e2e.alice, id, "head", { path: "big.bin", bytes: "1000" });
    expect(head.status).toBe(200);
    expect(head.body).toMatchObject({ size: 100_000, offset: 0, truncated: true });
    expect(Buffer.from(head.body.data, "base64").equals(onDisk.subarray(0, 1000))).toBe(true);
    const tail = await get<Slice>(e2e.alice, id, "tail", { path: "big.bin", bytes: "1000" });
    expect(tail.body).toMatchObject({ size: 100_000, offset: 99_000, truncated: true });
    expect(Buffer.from(tail.body.data, "base64").equals(onDisk.subarray(99_000))).toBe(true);
    const small = await get<Slice>(e2e.alice, id, "tail", { path: "./results/a.txt" });
    expect(small.body).toMatchObject({ size: 13, offset: 0, truncated: false });
    expect(Buffer.from(small.body.data, "base64").toString()).toBe("hello browse\n");
  }, 60_000);

  it("never follows a planted symlink, reads no FIFO, and refuses '..'", async () => {
    const refusals: [string, Record<string, string>, string][] = [
      ["head", { path: "passwd-link" }, "is a symlink"],
      ["tail", { path: "passwd-link" }, "is a symlink"],
      ["dir", { path: "root-link" }, "is a symlink"],
      ["dir", { path: "root-link/etc" }, "is a symlink"],
      ["head", { path: "root-link/etc/passwd" }, "is a symlink"],
      ["head", { path: "results-link/a.txt" }, "is a symlink"],
      ["head", { path: "fifo" }, "not a regular file"],
      ["head", { path: "results" }, "a directory"],
      ["dir", { path: "big.bin" }, "not a directory"],
      ["dir", { path: "nothing-here" }, "does not exist"],
    ];
    const passwd = readFileSync("/etc/passwd", "utf8");
    for (const [route, query, why] of refusals) {
      const t0 = Date.now();
      const res = await get<object>(e2e.alice, id, route, query);
      expect(res.status, `${route} ${query.path}: ${JSON.stringify(res.body)}`).toBe(422);
      expect(res.body.field).toBe("query.path");
      expect(res.body.detail).toContain(why);
      expect(JSON.stringify(res.body)).not.toContain(passwd.slice(0, 20));
      expect(Date.now() - t0).toBeLessThan(5_000);
    }
    const up = await get<object>(e2e.alice, id, "dir", { path: "../" });
    expect(up.status).toBe(422);
    expect(up.body.detail).toContain("'..'");
    expect((await get<object>(e2e.bob, id, "dir", {})).status).toBe(404);
  }, 120_000);

  it("serves the client (bytes decoded, typed errors) and the CLI (raw bytes, one line and non-zero on refusal)", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice, retry: { attempts: 1 } });
    const onDisk = readFileSync(join(dir, "big.bin"));
    const tail = await client.tail(id, "big.bin", { bytes: 300 });
    expect(Buffer.from(tail.bytes).equals(onDisk.subarray(-300))).toBe(true);
    expect((await client.browse(id, "results")).entries.map((e) => e.name)).toEqual(["a.txt", "deep"]);
    const refused = await client.head(id, "passwd-link").catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(SlurmgateError);
    expect(refused).toMatchObject({ status: 422, code: "validation_failed", field: "query.path" });
    const notYours = await createClient({ baseUrl: e2e.url, token: e2e.bob, retry: { attempts: 1 } })
      .browse(id)
      .catch((err: unknown) => err);
    expect(notYours).toMatchObject({ status: 404 });

    const env = { SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.alice };
    const ls = await runCli(["ls", `${id}:results`], { env });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/a\.txt\s+file\s+13/);
    expect(ls.stdout).toMatch(/deep\/\s+dir/);
    const head = await runCli(["head", `${id}:results/a.txt`], { env });
    expect(head).toMatchObject({ code: 0, stdout: "hello browse\n" });
    const tailCli = await runCli(["tail", "-c", "6", `${id}:results/a.txt`], { env });
    expect(tailCli).toMatchObject({ code: 0, stdout: "rowse\n" });
    for (const args of [
      ["head", `${id}:passwd-link`],
      ["ls", `${id}:../x`],
      ["head", id],
    ]) {
      const bad = await runCli(args, { env });
      expect(bad.code, args.join(" ")).not.toBe(0);
      expect(bad.stdout).toBe("");
      expect(bad.stderr.trim().split("\n").length, bad.stderr).toBeLessThanOrEqual(2);
    }
  }, 120_000);

  it("answers while the agent is parked in its lease call, well under its poll interval", async () => {
    const took: number[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      const t0 = Date.now();
      const res = await get<object>(e2e.alice, id, "head", { path: "results/a.txt" });
      took.push(Date.now() - t0);
      expect(res.status).toBe(200);
    }
    expect(Math.max(...took), took.join(", ")).toBeLessThan(2_000);
    expect(Math.max(...took)).toBeLessThan((POLL_WAIT_SECONDS * 1000) / 10);
  }, 60_000);
});

describe("a site agent as root browses with the job account's rights", () => {
  let id: string;
  let dir: string;
  let site: AgentProcess;
  beforeAll(async () => {
    await agent?.stop();
    ensurePosixUser("sg-alice");
    const root = varTmpDir("sg-browse-site-");
    chmodSync(root, 0o755);
    const map = `${root}.map.json`;
    writeFileSync(map, JSON.stringify({ minUid: 1000, users: { alice: "sg-alice" } }), { mode: 0o644 });
    site = e2e.startAgent("alpha", { SLURMGATE_USER_MAP: map, SLURMGATE_SHARED_ROOTS: root });
    await e2e.waitClustersAlive(120_000, ["alpha"]);
    const job = await e2e.submit(e2e.alice, {
      name: "browse-site",
      cluster: "alpha",
      script: "printf mine > mine.txt; chmod 0000 locked.txt 2>/dev/null; printf x > locked.txt; chmod 0000 locked.txt",
    });
    id = job.id;
    const done = await e2e.waitTerminal(e2e.alice, id, 90_000);
    expect(done.state, done.reason ?? "").toBe("completed");
    dir = join(root, "alice", id);
    // What the job's account cannot read: root's file dropped into its directory.
    writeFileSync(join(dir, "roots.txt"), "secret of root", { mode: 0o600 });
    chownSync(join(dir, "roots.txt"), 0, 0);
  }, 180_000);

  afterAll(async () => {
    await site?.stop();
  });

  it("reads the account's own file and refuses what the account could not read", async () => {
    const mine = await get<Slice>(e2e.alice, id, "head", { path: "mine.txt" });
    expect(mine.status, JSON.stringify(mine.body)).toBe(200);
    expect(Buffer.from(mine.body.data, "base64").toString()).toBe("mine");
    for (const path of ["roots.txt", "locked.txt"]) {
      const res = await get<object>(e2e.alice, id, "head", { path });
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(res.body.detail).toContain("not readable by the job's account");
      expect(JSON.stringify(res.body)).not.toContain("secret");
    }
    const listing = await get<{ entries: Entry[] }>(e2e.alice, id, "dir", {});
    expect(listing.body.entries.map((e) => e.name)).toEqual(expect.arrayContaining(["mine.txt", "roots.txt"]));
  }, 60_000);
});
