/**
 * The files a submission leaves in its job directory, through the agent's own prepare step on the
 * local executor (real files in a temp root; Slurm is not needed before sbatch): a plain job gets
 * only what its wrapper reads, every other job still gets each of its files with its mode, a second
 * try of the same attempt writes over what the first left, and the wrapper reads a missing
 * optional file as empty, while a symlink planted there is refused, never read through.
 */
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type AgentHandle, createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import type { Executor } from "../../agent/executor/types.ts";
import type { GatewayApi, Lease } from "../../agent/gateway-api.ts";
import { type RenderInput, renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { prepareLease } from "../../agent/submit.ts";
import type { JobSpecInput } from "../../schemas/job.ts";
import { NODE, PROBE, type ProbeOutput, runBatchScript } from "./helpers/run-rendered.ts";

const root = mkdtempSync(join(tmpdir(), "sg-jobfiles-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const jobId = () => `job_${String(++n).padStart(4, "0")}0123456789abcdef`;

const lease = (id: string, spec: Partial<JobSpecInput>): Lease =>
  ({ jobId: id, epoch: 1, attempt: 1, owner: "alice", spec: { name: "t", ...spec } }) as unknown as Lease;

let shared: Promise<AgentHandle> | undefined;
/** One agent for the file: it locks its state file. */
const agent = () => {
  shared ??= makeAgent();
  return shared;
};

async function makeAgent(): Promise<AgentHandle> {
  const local = createLocalExecutor({ spawners: 0 });
  const executor: Executor = {
    ...local,
    run: async (cmd) => ({ code: 127, stdout: "", stderr: `${cmd}: not in this test`, timedOut: false }),
  };
  const env = {
    HOME: root,
    PATH: "/usr/bin:/bin",
    SLURMGATE_URL: "http://127.0.0.1:9",
    SLURMGATE_AGENT_TOKEN: "sga_jobfiles0123456789abcdefghijklmnopq",
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: root,
    SLURMGATE_STATE_FILE: join(root, "agent-state.json"),
    SLURMGATE_SECRET_API_KEY: "s3cret",
    SLURMGATE_SECRET_DB_PASS: "hunter2",
  };
  // Prepare never calls the gateway; the agent checks its token once at creation.
  const api = {
    me: async () => ({
      ok: true,
      value: { kind: "agent", cluster: "alpha", user: null, serverTime: new Date().toISOString() },
    }),
  } as unknown as GatewayApi;
  const handle = await createAgent(parseAgentConfig(env), env, { api, executor, log: () => {} });
  handle.ctx.partitions = [
    { name: "debug", default: true, state: "up", nodes: 1, maxTimeSeconds: null, maxCpusPerNode: 2 } as never,
  ];
  return handle;
}

/** name → octal mode of every entry in `dir`. */
function modes(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, (lstatSync(join(dir, f)).mode & 0o7777).toString(8)]),
  );
}

async function prepared(a: AgentHandle, l: Lease) {
  const ready = await prepareLease(a.ctx, l);
  if (ready.kind !== "ready") {
    throw new Error(`not ready: ${JSON.stringify(ready)}`);
  }
  return ready.prepared;
}

describe("a job directory made for one submission", () => {
  it("holds only argv.nul and job.sbatch for a plain command job, 0600 and 0700", async () => {
    const a = await agent();
    const id = jobId();
    const { jobDir } = await prepared(a, lease(id, { command: ["true"] }));
    expect(jobDir).toBe(join(root, "alice", id));
    expect(modes(jobDir)).toEqual({ "argv.nul": "600", "job.sbatch": "700" });
    expect(lstatSync(jobDir).mode & 0o777).toBe(0o700);
  });

  it("a script job gets its payload even when the script is empty (bash needs the file)", async () => {
    const a = await agent();
    const { jobDir } = await prepared(a, lease(jobId(), { script: "" }));
    expect(modes(jobDir)).toEqual({ "job.sbatch": "700", "payload.sh": "600" });
  });

  it("a job with env, secrets, setup, container env and a service gets every file it needs, each 0600", async () => {
    const a = await agent();
    const { jobDir } = await prepared(
      a,
      lease(jobId(), {
        script: "echo hi",
        env: { SEED: "7" },
        secrets: ["API_KEY"],
        setup: ["true"],
        container: { image: "docker://alpine:3", env: { IN: "1" }, binds: [] },
        services: [
          { name: "db", command: ["sleep", "60"], secrets: ["DB_PASS"], health: { tcp: true }, timeoutSeconds: 5 },
        ],
      } as Partial<JobSpecInput>),
    );
    expect(modes(jobDir)).toEqual({
      "container-env.nul": "600",
      "env.nul": "600",
      "job.sbatch": "700",
      "payload.sh": "600",
      "secrets.nul": "600",
      "service-secrets.nul": "600",
      "services.nul": "600",
      "setup.nul": "600",
    });
    expect(readFileSync(join(jobDir, "env.nul"), "utf8")).toBe("SEED=7\0");
    expect(readFileSync(join(jobDir, "secrets.nul"), "utf8")).toBe("API_KEY=s3cret\0");
  });

  it("a second try of the same attempt writes every file over the first's, empty ones too, and drops its exit file", async () => {
    const a = await agent();
    const id = jobId();
    // What an earlier try (or anyone able to write there) left: stale data, a symlink, an exit file.
    const dir = join(root, "alice", id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "env.nul"), "STALE=1\0");
    writeFileSync(join(root, "victim"), "untouched");
    symlinkSync(join(root, "victim"), join(dir, "setup.nul"));
    writeFileSync(join(dir, "exitcode"), "0\n");
    await prepared(a, lease(id, { command: ["true"] }));
    expect(modes(dir)).toEqual({
      "argv.nul": "600",
      "container-env.nul": "600",
      "env.nul": "600",
      "job.sbatch": "700",
      "payload.sh": "600",
      "services.nul": "600",
      "setup.nul": "600",
    });
    expect(readFileSync(join(dir, "env.nul"), "utf8")).toBe("");
    expect(lstatSync(join(dir, "setup.nul")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(root, "victim"), "utf8")).toBe("untouched");
  });
});

describe("writeNewFiles (local executor)", () => {
  it("creates each file with its mode, and replaces a planted symlink instead of writing through it", async () => {
    const exec = createLocalExecutor({ spawners: 0 });
    const dir = mkdtempSync(join(root, "new-"));
    writeFileSync(join(root, "victim2"), "untouched");
    symlinkSync(join(root, "victim2"), join(dir, "b"));
    symlinkSync(join(root, "nowhere"), join(dir, "c"));
    await exec.writeNewFiles!(dir, [
      { name: "a", data: "A", mode: 0o600 },
      { name: "b", data: "B", mode: 0o700 },
      { name: "c", data: "C", mode: 0o600 },
    ]);
    expect(modes(dir)).toEqual({ a: "600", b: "700", c: "600" });
    expect(readFileSync(join(dir, "b"), "utf8")).toBe("B");
    expect(readFileSync(join(root, "victim2"), "utf8")).toBe("untouched");
    expect(() => readlinkSync(join(root, "nowhere"))).toThrow();
    expect(readdirSync(root)).not.toContain("nowhere");
  });
});

describe("the wrapper with only the files a plain job needs", () => {
  const render = (jobDir: string, spec: Partial<JobSpecInput>) =>
    renderBatchScript({
      lease: {
        jobId: "job_0123456789abcdefghij",
        attempt: 1,
        spec: { name: "t", ...spec } as RenderInput["lease"]["spec"],
      },
      jobDir,
      secretsFile: null,
      apptainerBin: "apptainer",
    });
  const writeNeeded = (jobDir: string, job: ReturnType<typeof render>) => {
    mkdirSync(jobDir, { recursive: true });
    for (const f of job.files.filter((f) => !(f.optional && f.data.length === 0))) {
      writeFileSync(join(jobDir, f.name), f.data, { mode: f.mode });
    }
    writeFileSync(join(jobDir, "job.sbatch"), job.script, { mode: 0o700 });
    return join(jobDir, "job.sbatch");
  };

  it("runs the command with its argv and no env files at all", async () => {
    const jobDir = join(root, "run-plain");
    const job = render(jobDir, { command: [NODE, PROBE, "a b", ""] });
    const script = writeNeeded(jobDir, job);
    expect(readdirSync(jobDir).sort()).toEqual(["argv.nul", "job.sbatch"]);
    const result = await runBatchScript(script);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.argv).toEqual(["a b", ""]);
    expect(probe.env.SEED).toBeUndefined();
  });

  it("refuses a dangling symlink where an optional file would be, instead of reading it as empty", async () => {
    const jobDir = join(root, "run-planted");
    const job = render(jobDir, { command: [NODE, PROBE] });
    const script = writeNeeded(jobDir, job);
    symlinkSync(join(root, "missing-target"), join(jobDir, "env.nul"));
    const result = await runBatchScript(script);
    expect(result.code).toBe(125);
    expect(result.stderr).toContain(`cannot read ${jobDir}/env.nul`);
  });
});
