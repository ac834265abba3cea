/**
 * Multi-node launchers on real Slurm: alpha's `multi` partition has two nodes (two slurmd on this
 * host, test/slurm/cluster.sh). `srun` proves both ranks ran and saw one head address; torchrun and
 * ray are the stand-ins in test/e2e/bin (neither is installed here), which record their argv and env
 * on each node. A job asking for more nodes than the partition has is refused with the reason.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNulList } from "../../agent/render/data-files.ts";
import { type E2E, slurmClusters, startE2E } from "./harness.ts";

const STANDINS = new URL("./bin", import.meta.url).pathname;
const shared = slurmClusters().alpha.sharedRoot;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
  e2e.startAgent("alpha");
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});
afterAll(async () => {
  await e2e?.close();
});

const nul = (id: string, name: string) => decodeNulList(readFileSync(join(shared, "alice", id, name)));
const headPort = (address: string) => Number(address.split(":")[1]);

describe("launchers on two real nodes", () => {
  it("srun: both ranks ran, on different nodes, and saw the same head address", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "ranks",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 2, time: "5m" },
      launcher: { kind: "srun" },
      script: [
        'echo "$SLURM_NODEID $SLURM_PROCID $SLURMD_NODENAME $SLURMGATE_HEAD_ADDRESS $MASTER_ADDR:$MASTER_PORT" > "$SLURMGATE_JOB_DIR/rank.$SLURM_PROCID"',
        'if [ "$SLURM_PROCID" = 0 ]; then sleep 1; printf \'{"head":"%s"}\' "$SLURMGATE_HEAD_ADDRESS" > "$SLURMGATE_RESULT"; fi',
      ].join("\n"),
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", exitCode: 0 });
    const ranks = [0, 1].map((r) =>
      readFileSync(join(shared, "alice", job.id, `rank.${r}`), "utf8")
        .trim()
        .split(" "),
    );
    expect(ranks.map((r) => r.slice(0, 2))).toEqual([
      ["0", "0"],
      ["1", "1"],
    ]);
    expect(new Set(ranks.map((r) => r[2])).size).toBe(2);
    const head = ranks[0]![3]!;
    expect(head).toMatch(/^[A-Za-z0-9._-]+:\d+$/);
    expect(ranks.map((r) => [r[3], r[4]])).toEqual([
      [head, head],
      [head, head],
    ]);
    expect(done.result).toEqual({ head });
  });

  it("torchrun: one per node, the rendered flags, node ranks 0 and 1, MASTER_ADDR/PORT the same on both", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "ddp",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 2, time: "5m" },
      setup: [`export PATH=${STANDINS}:$PATH`],
      launcher: { kind: "torchrun", nprocPerNode: 2 },
      command: ["bash", "-c", 'echo "trained on $SLURM_NODEID"', "train.py", "--lr=$(id)", "; echo pwned"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", exitCode: 0 });
    const env0 = nul(job.id, "torchrun-env.0.nul");
    const addr = env0.find((e) => e.startsWith("SLURMGATE_HEAD_ADDRESS="))!.split("=")[1]!;
    for (const node of [0, 1]) {
      expect(nul(job.id, `torchrun-argv.${node}.nul`)).toEqual([
        "--nnodes=2",
        "--nproc_per_node=2",
        `--node_rank=${node}`,
        "--rdzv_backend=c10d",
        `--rdzv_endpoint=${addr}`,
        `--rdzv_id=slurm-${done.slurmJobId}`,
        "bash",
        "-c",
        'echo "trained on $SLURM_NODEID"',
        "train.py",
        "--lr=$(id)",
        "; echo pwned",
      ]);
      expect(nul(job.id, `torchrun-env.${node}.nul`)).toEqual([
        `MASTER_ADDR=${addr.split(":")[0]}`,
        `MASTER_PORT=${headPort(addr)}`,
        `SLURM_NODEID=${node}`,
        `SLURMGATE_HEAD_ADDRESS=${addr}`,
      ]);
    }
    const out = await e2e.logs(e2e.alice, job.id);
    expect(out).toContain("trained on 0");
    expect(out).toContain("trained on 1");
    expect(out).not.toContain("pwned\n");
  });

  it("ray: symmetric-run on both nodes with the head address, the entrypoint once on the head", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "sweep",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 2, time: "5m" },
      setup: [`export PATH=${STANDINS}:$PATH`],
      launcher: { kind: "ray", numCpus: 1 },
      command: ["bash", "-c", 'echo "driver on $SLURM_NODEID"'],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", exitCode: 0 });
    const argv0 = nul(job.id, "ray-argv.0.nul");
    expect(nul(job.id, "ray-argv.1.nul")).toEqual(argv0);
    expect(argv0).toEqual([
      "symmetric-run",
      "--address",
      argv0[2],
      "--min-nodes",
      "2",
      "--num-cpus=1",
      "--",
      "bash",
      "-c",
      'echo "driver on $SLURM_NODEID"',
    ]);
    expect(argv0[2]).toMatch(/^[A-Za-z0-9._-]+:\d+$/);
    expect(headPort(argv0[2]!)).toBeGreaterThanOrEqual(20_000);
    const out = await e2e.logs(e2e.alice, job.id);
    expect(out.match(/driver on/g)).toEqual(["driver on"]);
    expect(out).toContain("driver on 0");
  });

  it("a rank that fails ends the whole job at once with its status, the other rank killed rather than waited for", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "one-fails",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 2, time: "5m" },
      launcher: { kind: "srun" },
      script: 'if [ "$SLURM_PROCID" = 1 ]; then exit 3; fi; sleep 120; echo survived > "$SLURMGATE_JOB_DIR/rank0"',
    });
    const t0 = Date.now();
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done.state).toBe("failed");
    expect(done.exitCode).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(90_000);
    expect(existsSync(join(shared, "alice", job.id, "rank0"))).toBe(false);
  });

  it("a launcher on one node is fine: torchrun with --nnodes=1 on the default partition", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "single",
      cluster: "alpha",
      resources: { nodes: 1, time: "5m" },
      setup: [`export PATH=${STANDINS}:$PATH`],
      launcher: { kind: "torchrun" },
      command: ["bash", "-c", "echo single $MASTER_ADDR"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", exitCode: 0 });
    expect(nul(job.id, "torchrun-argv.0.nul").slice(0, 2)).toEqual(["--nnodes=1", "--node_rank=0"]);
  });

  it("refuses more nodes than the partition has, and shell text in a launcher field, naming the field", async () => {
    const post = (spec: unknown) =>
      fetch(`${e2e.url}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
        body: JSON.stringify(spec),
      });
    const tooMany = await post({
      name: "three",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 3, time: "5m" },
      launcher: { kind: "srun" },
      command: ["true"],
    });
    expect(tooMany.status).toBeGreaterThanOrEqual(400);
    expect(tooMany.headers.get("content-type")).toContain("application/problem+json");
    expect(JSON.stringify(await tooMany.json())).toMatch(
      /resources\.nodes.*more than the partition has|more than the partition has.*resources\.nodes/,
    );
    const hostile = await post({
      name: "evil",
      cluster: "alpha",
      partition: "multi",
      resources: { nodes: 2 },
      launcher: { kind: "torchrun", nprocPerNode: "2 --rdzv_endpoint=evil:1; id" },
      command: ["true"],
    });
    expect(hostile.status).toBe(422);
    expect(JSON.stringify(await hostile.json())).toContain("launcher.nprocPerNode");
  });
});
