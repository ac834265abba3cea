/**
 * Outputs on real Slurm: a job writes results and a 200 MiB model; they come back byte-identical
 * through client.download and `slurmgate cp`; a planted symlink to /etc/passwd is named, never
 * uploaded; an agent SIGKILLed in the middle of an upload re-uploads after its restart, and the
 * files are listed once and correct, with the job's end reported only after that.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { sha256File } from "../helpers/sha256-file.ts";
import { type E2E, REPO, slurmClusters, startE2E } from "./harness.ts";

let e2e: E2E;
const out = mkdtempSync(join(tmpdir(), "sg-outputs-e2e-"));

beforeAll(async () => {
  e2e = await startE2E();
});

afterAll(async () => {
  await e2e?.close();
  rmSync(out, { recursive: true, force: true });
});

const MIB = 1024 * 1024;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(REPO, "bin/slurmgate.mjs"), ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: out, SLURMGATE_URL: e2e.url, SLURMGATE_TOKEN: e2e.alice },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

const script = (modelMiB: number) => `
mkdir -p results model
echo '{"loss": 0.25}' > results/metrics.json
echo 'not an output' > results/notes.txt
head -c ${modelMiB * MIB} /dev/urandom > model/final.pt
ln -s /etc/passwd results/passwd.json
`;

const jobDir = (id: string) => join(slurmClusters().alpha.sharedRoot, "alice", id);

describe("job outputs on real Slurm", () => {
  it("brings back a 200 MiB file byte-identical via client.download and slurmgate cp; the /etc/passwd symlink is named, not uploaded", async () => {
    const agent = e2e.startAgent("alpha");
    try {
      await e2e.waitClustersAlive(60_000, ["alpha"]);
      const job = await e2e.submit(e2e.alice, {
        name: "outputs",
        cluster: "alpha",
        script: script(200),
        outputs: ["results/*.json", "model/final.pt"],
      });
      const done = await e2e.waitTerminal(e2e.alice, job.id, 200_000);
      expect(done.state).toBe("completed");
      expect(done.reason).toContain("1 output not brought back: results/passwd.json (a symlink (never followed))");

      const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
      const files = await client.listFiles(job.id);
      const modelSha = await sha256File(join(jobDir(job.id), "model/final.pt"));
      expect(files).toEqual([
        { path: "model/final.pt", size: 200 * MIB, sha256: modelSha, attempt: 1 },
        {
          path: "results/metrics.json",
          size: 15,
          sha256: createHash("sha256").update('{"loss": 0.25}\n').digest("hex"),
          attempt: 1,
        },
      ]);

      const viaClient = await client.download(job.id, "model/final.pt", join(out, "client", "final.pt"));
      expect(viaClient.map((f) => f.dest)).toEqual([join(out, "client", "final.pt")]);
      expect(await sha256File(join(out, "client", "final.pt"))).toBe(modelSha);
      await client.download(job.id, "results/", join(out, "client-results/"));
      expect(readFileSync(join(out, "client-results", "metrics.json"), "utf8")).toBe('{"loss": 0.25}\n');

      const cpModel = await cli(["cp", `${job.id}:model/final.pt`, join(out, "cli-final.pt")]);
      expect(cpModel.code, cpModel.stderr).toBe(0);
      expect(await sha256File(join(out, "cli-final.pt"))).toBe(modelSha);
      const cpDir = await cli(["cp", `${job.id}:results/`, join(out, "cli-results/")]);
      expect(cpDir.code, cpDir.stderr).toBe(0);
      expect(cpDir.stdout).toContain("results/metrics.json ->");
      expect(readFileSync(join(out, "cli-results", "metrics.json"), "utf8")).toBe('{"loss": 0.25}\n');

      const missing = await cli(["cp", `${job.id}:results/passwd.json`, join(out, "nope")]);
      expect(missing.code).toBe(1);
      expect(missing.stderr.trim().split("\n")).toHaveLength(1);
      expect(missing.stderr).toContain("has no output results/passwd.json");
    } finally {
      await agent.stop();
    }
  });

  it("an agent SIGKILLed mid-upload uploads again after its restart: listed once and correct, the end reported after", async () => {
    const first = e2e.startAgent("alpha", { SLURMGATE_TEST_CRASH_AT: "mid-output-upload" });
    const died = new Promise<string | null>((resolve) => first.child.once("exit", (_c, signal) => resolve(signal)));
    await e2e.waitClustersAlive(60_000, ["alpha"]);
    const job = await e2e.submit(e2e.alice, {
      name: "outputs-crash",
      cluster: "alpha",
      script: script(40),
      outputs: ["model/final.pt"],
    });
    expect(await died).toBe("SIGKILL");
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    expect((await e2e.job(e2e.alice, job.id)).state).not.toBe("completed");
    expect(await client.listFiles(job.id)).toEqual([]);

    const second = e2e.startAgent("alpha", { SLURMGATE_STATE_FILE: first.stateFile });
    try {
      const done = await e2e.waitTerminal(e2e.alice, job.id, 120_000);
      expect(done.state).toBe("completed");
      const modelSha = await sha256File(join(jobDir(job.id), "model/final.pt"));
      expect(await client.listFiles(job.id)).toEqual([
        { path: "model/final.pt", size: 40 * MIB, sha256: modelSha, attempt: 1 },
      ]);
      await client.download(job.id, "model/final.pt", join(out, "after-crash.pt"));
      expect(await sha256File(join(out, "after-crash.pt"))).toBe(modelSha);
    } finally {
      await second.stop();
    }
  });
});
