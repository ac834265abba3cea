/**
 * Stopping an agent (SIGTERM) while it uploads an output, on real Slurm with a real gateway: the
 * agent, run as people run it (`slurmgate agent`), breaks the upload off and exits within seconds
 * instead of after the whole file; the gateway lists nothing for the half-sent upload; after a
 * restart the file arrives whole, once, and only then is the job's end reported. The worst timing
 * too: SIGTERM the moment the gateway has stored the bytes, before the agent hears back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import type { BlobStore } from "../../gateway/files/blob-store.ts";
import { sha256File } from "../helpers/sha256-file.ts";
import { type E2E, REPO, slurmClusters, startE2E } from "./harness.ts";

let e2e: E2E;
beforeAll(async () => {
  e2e = await startE2E();
});
afterAll(async () => {
  await e2e?.close();
});

const MIB = 1024 * 1024;
const NODE = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;

/** The gateway's own blob store, watched: each put's start, and how it ended (answered only after `onStored`). */
function watchPuts(blobs: BlobStore, onStart: () => void = () => {}, onStored: () => unknown = () => {}) {
  const real = blobs.put;
  const ended: ("stored" | "failed")[] = [];
  blobs.put = async (body, options) => {
    onStart();
    try {
      const stored = await real(body, options);
      ended.push("stored");
      await onStored();
      return stored;
    } catch (error) {
      ended.push("failed");
      throw error;
    }
  };
  return { ended, restore: () => (blobs.put = real) };
}

/** `slurmgate agent`, the command people run: nothing calls process.exit for it when it stops. */
function cliAgent(stateFile?: string) {
  const env = e2e.agentEnv("alpha", stateFile ? { SLURMGATE_STATE_FILE: stateFile } : {});
  const child: ChildProcess = spawn(NODE, [join(REPO, "bin/slurmgate.mjs"), "agent"], { cwd: REPO, env });
  let output = "";
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<number>((resolve) => child.once("exit", () => resolve(Date.now())));
  return { child, stateFile: env.SLURMGATE_STATE_FILE!, exited, logs: () => output };
}

const jobDir = (id: string) => join(slurmClusters().alpha.sharedRoot, "alice", id);

async function expectWholeOnceAfterRestart(stateFile: string, jobId: string, size: number) {
  const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
  const watched = watchPuts(e2e.gw.deps.blobs);
  const second = e2e.startAgent("alpha", { SLURMGATE_STATE_FILE: stateFile });
  try {
    const done = await e2e.waitTerminal(e2e.alice, jobId, 180_000);
    expect(done.state).toBe("completed");
    const sha256 = await sha256File(join(jobDir(jobId), "model/final.pt"));
    expect(await client.listFiles(jobId)).toEqual([{ path: "model/final.pt", size, sha256, attempt: 1 }]);
    expect(watched.ended).toEqual(["stored"]); // uploaded again exactly once
  } finally {
    watched.restore();
    await second.stop();
  }
}

describe("stopping the agent during an output upload", () => {
  it("SIGTERM mid-upload of a 1 GiB output: exits within seconds, nothing listed; after a restart it arrives whole, once", async () => {
    let putStarted!: () => void;
    const started = new Promise<void>((resolve) => (putStarted = resolve));
    const watched = watchPuts(e2e.gw.deps.blobs, () => putStarted());
    const first = cliAgent();
    try {
      await e2e.waitClustersAlive(60_000, ["alpha"]);
      const job = await e2e.submit(e2e.alice, {
        name: "outputs-stop",
        cluster: "alpha",
        script: "mkdir -p model && head -c 1073741824 /dev/zero > model/final.pt",
        outputs: ["model/final.pt"],
      });
      await started;
      await new Promise((r) => setTimeout(r, 500)); // well inside the upload: the bytes are flowing
      const signalled = Date.now();
      first.child.kill("SIGTERM");
      const exitedAt = await first.exited;
      expect(first.child.exitCode).toBe(0);
      expect(exitedAt - signalled, first.logs()).toBeLessThan(5_000);

      // The half-sent upload: refused by the store, listed nowhere, and the job's end held back.
      await expect.poll(() => watched.ended).toEqual(["failed"]);
      const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
      expect(await client.listFiles(job.id)).toEqual([]);
      expect((await e2e.job(e2e.alice, job.id)).state).not.toBe("completed");
      watched.restore();

      await expectWholeOnceAfterRestart(first.stateFile, job.id, 1024 * MIB);
    } finally {
      watched.restore();
      first.child.kill("SIGKILL");
    }
  });

  it("SIGTERM once the gateway has stored every byte, before the agent hears so: the end is not reported; after a restart one row, correct", async () => {
    let first!: ReturnType<typeof cliAgent>;
    // The gateway answers only after the agent is gone: it never learns its upload went through.
    const watched = watchPuts(
      e2e.gw.deps.blobs,
      () => {},
      () => {
        first.child.kill("SIGTERM");
        return first.exited;
      },
    );
    first = cliAgent();
    try {
      // Queued until this agent leases it (waitClustersAlive knows only the harness's own agents).
      const job = await e2e.submit(e2e.alice, {
        name: "outputs-stop-late",
        cluster: "alpha",
        script: "mkdir -p model && head -c 41943040 /dev/urandom > model/final.pt",
        outputs: ["model/final.pt"],
      });
      await first.exited;
      expect(first.child.exitCode, first.logs()).toBe(0);
      expect(watched.ended, first.logs()).toEqual(["stored"]);
      watched.restore();
      // The gateway may list the file (its row is written once the bytes are in), but the agent
      // never heard so: it must not have reported the end.
      expect((await e2e.job(e2e.alice, job.id)).state).not.toBe("completed");

      await expectWholeOnceAfterRestart(first.stateFile, job.id, 40 * MIB);
    } finally {
      watched.restore();
      first.child.kill("SIGKILL");
    }
  });
});
