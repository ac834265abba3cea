/**
 * `spec.launcher` rendered and run with plain bash (no Slurm: stand-in `scontrol`/`srun` here, the
 * torchrun/ray stand-ins of test/e2e/bin): the per-job port rule, the argv each node gets, and
 * refusals of hostile launcher fields and of combinations that cannot work.
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNulList } from "../../agent/render/data-files.ts";
import { JOB_PORT_RANGE, jobPortRange, launcherParams, portRangeShell } from "../../agent/render/launcher.ts";
import { type RenderInput, renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { TEMPLATE_VERSION } from "../../agent/render/template.ts";
import { JobSpec, type JobSpecInput } from "../../schemas/job.ts";
import { bashSyntaxCheck, runBatchScript, writeJob } from "./helpers/run-rendered.ts";

const JOB_ID = "job_0123456789abcdefghij";
const STANDINS = new URL("../e2e/bin", import.meta.url).pathname;
const HOSTILE = ["$(touch /tmp/sg-pwned)", "`id`", "a'b\"c", "; rm -rf / #", "x y\t", "--node_rank=7", "--"];
let root = "";
let fakeBin = "";

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-launcher-"));
  fakeBin = join(root, "bin");
  await mkdir(fakeBin);
  // scontrol: the allocation is node-a and node-b. srun: records its argv, runs the task argv once per node.
  await writeFile(
    join(fakeBin, "scontrol"),
    `#!/bin/bash\n[[ $1 == show && $2 == hostnames ]] && printf 'node-a\\nnode-b\\n'\n`,
  );
  await writeFile(
    join(fakeBin, "srun"),
    [
      "#!/bin/bash",
      'printf "%s\\0" "$@" >"$SLURMGATE_JOB_DIR/srun-argv.nul"',
      "while [[ $1 == --* ]]; do shift; done",
      "rc=0",
      'for n in 0 1; do SLURM_NODEID=$n SLURM_PROCID=$n "$@" || rc=$?; done',
      "exit $rc",
      "",
    ].join("\n"),
  );
  await chmod(join(fakeBin, "scontrol"), 0o755);
  await chmod(join(fakeBin, "srun"), 0o755);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function input(spec: Partial<JobSpecInput>, jobDir: string): RenderInput {
  return {
    lease: { jobId: JOB_ID, attempt: 1, spec: { name: "t", ...spec } as RenderInput["lease"]["spec"] },
    jobDir,
    secretsFile: null,
    apptainerBin: "apptainer",
  };
}

async function run(spec: Partial<JobSpecInput>, dir: string) {
  const jobDir = join(root, dir);
  const job = renderBatchScript(input(spec, jobDir));
  const script = await writeJob(jobDir, job);
  await bashSyntaxCheck(script);
  const r = await runBatchScript(script, {
    PATH: `${fakeBin}:${STANDINS}:/usr/bin:/bin`,
    SLURM_JOB_ID: "37394",
    SLURM_JOB_NODELIST: "node-[a-b]",
    SLURM_JOB_NUM_NODES: "2",
  });
  const nul = async (name: string) => decodeNulList(await readFile(join(jobDir, name)));
  return { ...r, jobDir, script: job.script, nul };
}

describe("the per-job port range", () => {
  it("is one rule: the wrapper's shell function gives the same ports as jobPortRange", () => {
    for (const id of [1, 2, 1399, 1400, 37394, 5_000_000, 999_999_999]) {
      const out = execFileSync("bash", ["-c", `${portRangeShell()}\necho "$(sg_port_base) $(sg_port_head)"`], {
        env: { PATH: "/usr/bin:/bin", SLURM_JOB_ID: String(id) },
      }).toString();
      const { low, high } = jobPortRange(id);
      expect(out.trim()).toBe(`${low} ${high}`);
      expect(low).toBeGreaterThanOrEqual(1_024);
      expect(high).toBeLessThanOrEqual(65_535);
    }
  });

  it("gives jobs next to each other disjoint ranges", () => {
    const a = jobPortRange(37394);
    const b = jobPortRange(37395);
    expect(b.low).toBe(a.high + 1);
    expect(a.high - a.low + 1).toBe(JOB_PORT_RANGE.size);
  });
});

describe("launcher rendered", () => {
  it("srun: every node runs the payload argv and sees the same head node and port", async () => {
    const r = await run(
      {
        launcher: { kind: "srun" },
        resources: { nodes: 2 },
        command: [
          "bash",
          "-c",
          'echo "$SLURM_NODEID $SLURMGATE_HEAD_ADDRESS $MASTER_ADDR:$MASTER_PORT" >> "$SLURMGATE_JOB_DIR/seen"',
        ],
      },
      "srun",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.script).toContain(`template v${TEMPLATE_VERSION}`);
    const head = `node-a:${jobPortRange(37394).high}`;
    expect((await readFile(join(r.jobDir, "seen"), "utf8")).trim().split("\n")).toEqual([
      `0 ${head} ${head}`,
      `1 ${head} ${head}`,
    ]);
    expect((await r.nul("srun-argv.nul")).slice(0, 2)).toEqual(["--kill-on-bad-exit=1", "bash"]);
  });

  it("torchrun: one task per node, rendezvous at the head, --node_rank from each node's SLURM_NODEID, payload argv intact", async () => {
    const payload = [
      "bash",
      "-c",
      'printf "%s\\0" "$@" > "$SLURMGATE_JOB_DIR/payload.$SLURM_NODEID.nul"',
      "train",
      ...HOSTILE,
    ];
    const r = await run(
      { launcher: { kind: "torchrun", nprocPerNode: 4, maxRestarts: 2 }, resources: { nodes: 2 }, command: payload },
      "torchrun",
    );
    expect(r.code, r.stderr).toBe(0);
    const port = jobPortRange(37394).high;
    expect((await r.nul("srun-argv.nul")).slice(0, 4)).toEqual([
      "--kill-on-bad-exit=1",
      "--nodes=2",
      "--ntasks=2",
      "--ntasks-per-node=1",
    ]);
    for (const node of [0, 1]) {
      expect(await r.nul(`torchrun-argv.${node}.nul`)).toEqual([
        "--nnodes=2",
        "--nproc_per_node=4",
        "--max_restarts=2",
        `--node_rank=${node}`,
        "--rdzv_backend=c10d",
        `--rdzv_endpoint=node-a:${port}`,
        "--rdzv_id=slurm-37394",
        ...payload,
      ]);
      expect(await r.nul(`torchrun-env.${node}.nul`)).toContain(`MASTER_PORT=${port}`);
      expect(await r.nul(`payload.${node}.nul`)).toEqual(HOSTILE);
    }
  });

  it("ray: symmetric-run with the head address and node count, the payload after --, run on the head", async () => {
    const r = await run(
      {
        launcher: { kind: "ray", numCpus: 2, numGpus: 0 },
        resources: { nodes: 2 },
        command: ["bash", "-c", 'printf "%s\\0" "$@" > "$SLURMGATE_JOB_DIR/driver.nul"', "driver", ...HOSTILE],
      },
      "ray",
    );
    expect(r.code, r.stderr).toBe(0);
    const port = jobPortRange(37394).high;
    for (const node of [0, 1]) {
      expect((await r.nul(`ray-argv.${node}.nul`)).slice(0, 9)).toEqual([
        "symmetric-run",
        "--address",
        `node-a:${port}`,
        "--min-nodes",
        "2",
        "--num-cpus=2",
        "--num-gpus=0",
        "--",
        "bash",
      ]);
    }
    expect(await r.nul("driver.nul")).toEqual(HOSTILE);
  });

  it("torchrun in a container: each node runs apptainer, then torchrun inside it, with its own node rank", async () => {
    const image = join(root, "img.sif");
    await writeFile(image, "");
    const jobDir = join(root, "ctr");
    const job = renderBatchScript({
      ...input(
        {
          launcher: { kind: "torchrun" },
          resources: { nodes: 2 },
          container: { image, binds: [{ src: "/tmp", dst: "/opt/data" }] },
          command: ["true"],
        },
        jobDir,
      ),
      apptainerBin: join(STANDINS, "apptainer"),
    });
    const script = await writeJob(jobDir, job);
    const r = await runBatchScript(script, {
      PATH: `${fakeBin}:${STANDINS}:/usr/bin:/bin`,
      SLURM_JOB_ID: "37394",
      SLURM_JOB_NODELIST: "node-[a-b]",
      SLURM_JOB_NUM_NODES: "2",
    });
    expect(r.code, r.stderr).toBe(0);
    const argv = decodeNulList(await readFile(join(jobDir, "apptainer-argv.nul")));
    const at = argv.indexOf(image);
    expect(argv).toContain("/tmp:/opt/data");
    // The stand-in keeps the last node's argv: node 1's rank is in torchrun's flags, nowhere else.
    expect(argv.slice(at + 1, at + 4)).toEqual(["torchrun", "--nnodes=2", "--node_rank=1"]);
    expect(decodeNulList(await readFile(join(jobDir, "torchrun-argv.1.nul")))).toContain("--node_rank=1");
  });

  it("a job without a launcher runs as before: no srun", async () => {
    const r = await run({ command: ["true"] }, "plain");
    expect(r.code, r.stderr).toBe(0);
    await expect(readFile(join(r.jobDir, "srun-argv.nul"))).rejects.toThrow();
  });
});

describe("launcher refusals", () => {
  const base = { name: "t", command: ["x"] };
  const issue = (spec: unknown) => {
    const r = JobSpec.safeParse(spec);
    expect(r.success).toBe(false);
    return r.error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n") ?? "";
  };

  it("refuses shell text, unknown kinds and extra fields in every launcher field", () => {
    for (const bad of HOSTILE) {
      expect(issue({ ...base, launcher: { kind: "torchrun", nprocPerNode: bad } })).toContain("launcher.nprocPerNode");
      expect(issue({ ...base, launcher: { kind: "torchrun", maxRestarts: bad } })).toContain("launcher.maxRestarts");
      expect(issue({ ...base, launcher: { kind: "ray", numCpus: bad } })).toContain("launcher.numCpus");
      expect(issue({ ...base, launcher: { kind: "ray", numGpus: bad } })).toContain("launcher.numGpus");
      expect(issue({ ...base, launcher: { kind: bad } })).toContain("launcher.kind");
    }
    expect(issue({ ...base, launcher: { kind: "torchrun", nprocPerNode: 1.5 } })).toContain("launcher.nprocPerNode");
    expect(issue({ ...base, launcher: { kind: "torchrun", nprocPerNode: 0 } })).toContain("launcher.nprocPerNode");
    expect(issue({ ...base, launcher: { kind: "ray", args: ["--head"] } })).toContain("launcher");
    expect(issue({ ...base, launcher: { kind: "srun", extraArgs: "--mpi=pmix" } })).toContain("launcher");
  });

  it("refuses a launcher with an array or with services, naming the field and the reason", () => {
    expect(issue({ ...base, launcher: { kind: "srun" }, array: { indexes: "0-3" } })).toMatch(/^launcher: .*array/m);
    expect(
      issue({
        ...base,
        launcher: { kind: "srun" },
        services: [{ name: "api", command: ["x"], health: { tcp: true }, timeoutSeconds: 5 }],
      }),
    ).toMatch(/^launcher: .*services/m);
  });

  it("the agent refuses them too when a gateway sends them anyway", () => {
    const spec = JobSpec.parse({ ...base, launcher: { kind: "ray" } });
    expect(() => launcherParams({ ...spec, array: { indexes: "0-1" } })).toThrow(/launcher/);
    expect(() =>
      launcherParams({
        ...spec,
        launcher: { kind: "torchrun", nprocPerNode: "4; id" as unknown as number },
      }),
    ).toThrow(/launcher.nprocPerNode/);
    expect(launcherParams(JobSpec.parse({ ...base, resources: { nodes: 1 }, launcher: { kind: "srun" } }))).toEqual({
      kind: "srun",
      options: [],
    });
  });
});
