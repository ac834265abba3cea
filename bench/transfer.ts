/**
 * Moving a large file, side by side with the plain tools on the same machine and filesystem:
 * - the gateway path: `client.upload` of a file on disk (parts + compose) and `client.download`
 *   of the same bytes as a job output, next to `cp` of that file (and `cp` then `sync` of it);
 * - the agent's channel, with its own code and the SSH executor against the loopback sshd of the
 *   SSH tests: an input fetched from the gateway and written into a job directory on the "login
 *   node" (`writeInputs`), and an output read back from there and streamed to the gateway
 *   (`bringBackOutputs`), next to `scp` to and from that sshd. The
 *   same calls with the local executor show what SSH itself costs.
 * Each round makes new deterministic bytes (so nothing is deduplicated by the content-addressed
 * store) and runs ours, then the floors. Every copy is hashed afterwards: a transfer whose bytes
 * differ throws, so it can never report a speed.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createLocalExecutor } from "../agent/executor/local.ts";
import { type SshExecutor, createSshExecutor } from "../agent/executor/ssh.ts";
import type { Executor } from "../agent/executor/types.ts";
import type { AgentContext } from "../agent/context.ts";
import { createGatewayApi } from "../agent/gateway-api.ts";
import { writeInputs } from "../agent/inputs.ts";
import { bringBackOutputs } from "../agent/outputs.ts";
import type { TrackedJob } from "../agent/state.ts";
import { seedWorld } from "../test/client/support/world.ts";
import { startGatewayProcess } from "../test/helpers/gateway-process.ts";
import { type BenchOptions, type Row, percentile } from "./types.ts";

const run = promisify(execFile);
const MiB = 1024 ** 2;
/** The loopback sshd of the SSH tests (test/ssh/sshd.sh writes it; this bench never starts or stops it). */
const SSH_JSON = "/var/tmp/slurmgate-test/ssh/ssh.json";
const AGENT_ID = "test-agent"; // the id seedWorld's FakeAgent leases with

/** A copy whose bytes differ from the source's: the bench stops here instead of reporting a speed. */
export class TransferCorrupt extends Error {
  override readonly name = "TransferCorrupt";
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/** Throws TransferCorrupt when `path` does not hash to `expected`. */
export async function verifyCopy(what: string, path: string, expected: string): Promise<void> {
  const actual = await sha256File(path);
  if (actual !== expected) {
    throw new TransferCorrupt(`${what}: ${path} hashes to ${actual}, not the source's ${expected}; no speed reported`);
  }
}

/**
 * Writes `bytes` of xorshift128 output seeded by `seed`: incompressible, the same for the same
 * seed, different for another (each round's upload is new to the content-addressed store).
 */
export async function writeDeterministic(path: string, bytes: number, seed: number): Promise<string> {
  let x = seed | 1;
  let y = 362_436_069;
  let z = 521_288_629;
  let w = 88_675_123 ^ seed;
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const block = 8 * MiB;
  for (let done = 0; done < bytes; done += block) {
    const n = Math.min(block, bytes - done);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      words[i] = w;
    }
    const chunk = Buffer.from(words.buffer, 0, n);
    hash.update(chunk);
    if (!out.write(chunk)) {
      await new Promise<void>((r) => out.once("drain", () => r()));
    }
  }
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
  return hash.digest("hex");
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

type SshTarget = { host: string; port: number; user: string; key: string; hostKey: string };

function scpArgs(ssh: SshTarget): string[] {
  // Loopback sshd with its own host key: the agent pins it; scp is told not to record it.
  return [
    "-q",
    "-B",
    "-P",
    String(ssh.port),
    "-i",
    ssh.key,
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
  ];
}

type Source = { path: string; bytes: number; sha: string; ref: `sha256:${string}` };

/** Throughput samples (MiB/s) of one path, by name. */
type Samples = Record<string, number[]>;

export async function runTransfer(opts: BenchOptions): Promise<Row[]> {
  const size = (opts.quick ? 50 : 200) * MiB;
  // The SSH pair moves the same size since its SFTP requests are pipelined (it ran at under
  // 1 MiB/s with one request at a time, and used a 50 MiB file then).
  const sshSize = size;
  const rounds = opts.quick ? 1 : 2;
  const ssh = JSON.parse(readFileSync(SSH_JSON, "utf8")) as SshTarget;
  // One filesystem for everything: the source, cp's copies, the gateway's blobs, the job
  // directories, scp's copies (tmpdir() is on the root disk here, not a tmpfs).
  const root = mkdtempSync(join(tmpdir(), "slurmgate-xfer-"));
  const filesDir = join(root, "blobs");
  mkdirSync(filesDir);
  const gw = await startGatewayProcess({
    SLURMGATE_FILES_DIR: filesDir,
    SLURMGATE_MAX_QUEUED_PER_USER: "1000",
  });
  const sshExec: SshExecutor = createSshExecutor({
    host: ssh.host,
    port: ssh.port,
    username: ssh.user,
    hostKey: ssh.hostKey,
    privateKey: readFileSync(ssh.key),
  });
  const localExec = createLocalExecutor({ spawners: 0 });
  const samples: Samples = {};
  const add = (name: string, bytes: number, seconds: number) => {
    samples[name] = [...(samples[name] ?? []), bytes / MiB / seconds];
    opts.log(
      `transfer: ${name}, ${bytes / MiB} MiB in ${seconds.toFixed(2)} s, ${(bytes / MiB / seconds).toFixed(1)} MiB/s`,
    );
  };
  try {
    await sshExec.connect();
    const world = await seedWorld(gw.url, gw.adminToken, "xfer");
    // The agent's api, with the cause of a failed request logged (the api reduces it to "fetch failed").
    const api = createGatewayApi({
      baseUrl: gw.url,
      token: world.agentToken,
      fetch: async (input, init) => {
        const t = performance.now();
        try {
          return await fetch(input, init);
        } catch (err) {
          const cause = (err as { cause?: unknown }).cause;
          opts.log(
            `transfer: agent request failed after ${((performance.now() - t) / 1000).toFixed(1)} s: ${(err as Error).message}${cause ? ` (${String(cause)})` : ""}`,
          );
          throw err;
        }
      },
    });
    const quiet = () => {};
    /** The agent's own calls for one job: its input written into a job dir, then brought back as its output. */
    const through = async (name: string, executor: Executor, dir: string, file: Source) => {
      const input = { file: file.ref, path: "data.bin" };
      const job = await world.user.submit({
        name: `xfer-${name}`,
        // The fake agent is seen only when it leases: name the cluster so the submit does not wait on liveness.
        cluster: "hpc1",
        command: ["true"],
        inputs: [input],
        outputs: ["data.bin"],
      });
      await world.agent.start(job.id);
      const jobDir = join(dir, `job-${name}`);
      mkdirSync(jobDir);
      const ctx = { api, agentId: AGENT_ID, executor, log: quiet } as unknown as AgentContext;
      add(`agent input, ${name}`, file.bytes, await timed(() => writeInputs(ctx, executor, jobDir, [input])));
      await verifyCopy(`agent input (${name})`, join(jobDir, "data.bin"), file.sha);
      const tracked = {
        jobId: job.id,
        epoch: world.agent.epochs.get(job.id)!,
        owner: "xfer",
        jobDir,
        outputs: ["data.bin"],
      } as TrackedJob;
      let outcome: Awaited<ReturnType<typeof bringBackOutputs>> | undefined;
      add(
        `agent output, ${name}`,
        file.bytes,
        await timed(async () => {
          outcome = await bringBackOutputs(ctx, tracked);
        }),
      );
      if (!outcome?.done || outcome.uploaded !== 1) {
        throw new TransferCorrupt(`agent output (${name}) was not brought back: ${JSON.stringify(outcome)}`);
      }
      await world.agent.finish(job.id);
      return job.id;
    };
    const upload = async (path: string, bytes: number, seed: number, timedAs?: string): Promise<Source> => {
      const sha = await writeDeterministic(path, bytes, seed);
      let ref = "";
      const seconds = await timed(async () => {
        ref = (await world.user.upload(path)).file;
      });
      if (ref !== `sha256:${sha}`) {
        throw new TransferCorrupt(`upload: the gateway named ${ref}, not sha256:${sha}`);
      }
      if (timedAs) {
        add(timedAs, bytes, seconds);
      }
      return { path, bytes, sha, ref: ref as `sha256:${string}` };
    };
    for (let round = 0; round < rounds; round++) {
      const dir = join(root, `r${round}`);
      mkdirSync(dir);
      opts.log(`transfer: round ${round + 1}/${rounds}`);

      // The gateway path and the agent with the local executor, then cp, on the large file.
      const big = await upload(join(dir, "src.bin"), size, 0x5eed + round, "gateway upload");
      const localJob = await through("local", localExec, dir, big);
      const back = join(dir, "download.bin");
      add("gateway download", size, await timed(() => world.user.download(localJob, "data.bin", back)));
      await verifyCopy("gateway download", back, big.sha);
      rmSync(back);
      const cpDst = join(dir, "cp.bin");
      add("cp", size, await timed(() => run("cp", [big.path, cpDst])));
      await verifyCopy("cp", cpDst, big.sha);
      rmSync(cpDst);
      const syncDst = join(dir, "cp-sync.bin");
      add(
        "cp + sync",
        size,
        await timed(() => run("sh", ["-c", 'cp "$1" "$2" && sync "$2"', "sh", big.path, syncDst])),
      );
      await verifyCopy("cp + sync", syncDst, big.sha);
      rmSync(syncDst);

      // The agent over SSH, then scp both ways, on new bytes of the same size (so nothing is deduplicated).
      const sshSrc = await upload(join(dir, "ssh-src.bin"), sshSize, 0x55e + round);
      await through("ssh", sshExec, dir, sshSrc);
      const scpUp = join(dir, "scp-up.bin");
      add(
        "scp push",
        sshSize,
        await timed(() => run("scp", [...scpArgs(ssh), sshSrc.path, `${ssh.user}@${ssh.host}:${scpUp}`])),
      );
      await verifyCopy("scp push", scpUp, sshSrc.sha);
      const scpDown = join(dir, "scp-down.bin");
      add(
        "scp pull",
        sshSize,
        await timed(() => run("scp", [...scpArgs(ssh), `${ssh.user}@${ssh.host}:${scpUp}`, scpDown])),
      );
      await verifyCopy("scp pull", scpDown, sshSrc.sha);
      // A round's files go before the next is written: several copies of 200 MiB add up.
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    sshExec.close();
    await gw.stop();
    rmSync(root, { recursive: true, force: true });
  }

  const mid = (name: string) => percentile(samples[name] ?? [], 50);
  const each = (name: string) => (samples[name] ?? []).map((v) => v.toFixed(1)).join(", ");
  const row = (metric: string, ours: string, floor: string, note: string): Row => ({
    section: "transfer",
    metric,
    ours: mid(ours),
    floor: mid(floor),
    unit: "MiB/s",
    ratio: mid(ours) / mid(floor),
    n: rounds,
    target: `${note}; rounds: ours ${each(ours)}, floor ${each(floor)}`,
  });
  const mb = `${size / MiB} MiB`;
  const smb = `${sshSize / MiB} MiB`;
  return [
    row(`upload ${mb}, client.upload → gateway blob store`, "gateway upload", "cp", "floor: cp of the file"),
    row(`download ${mb}, client.download of a job output`, "gateway download", "cp", "floor: cp of the file"),
    row(
      `upload ${mb} vs cp + sync`,
      "gateway upload",
      "cp + sync",
      "floor: cp then sync of the copy (the gateway does not fsync)",
    ),
    row(
      `agent input ${smb} into a job dir over SSH (writeInputs)`,
      "agent input, ssh",
      "scp push",
      "floor: scp to the loopback sshd",
    ),
    row(
      `agent output ${smb} from a job dir over SSH (bringBackOutputs)`,
      "agent output, ssh",
      "scp pull",
      "floor: scp from the loopback sshd",
    ),
    row(`agent input ${mb}, local executor`, "agent input, local", "cp", "floor: cp of the file"),
    row(`agent output ${mb}, local executor`, "agent output, local", "cp", "floor: cp of the file"),
  ];
}
