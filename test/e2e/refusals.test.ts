/**
 * A real agent on real Slurm publishes the roots and sbatch allow-list it enforces; the gateway
 * refuses at submission what that agent would refuse, runs what both sides allow, and
 * `slurmgate agent doctor` names every difference between the agent and the cluster config.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type E2E, REPO, slurmClusters, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
// The admin allows --constraint and --begin on alpha; alpha's agent allows --begin and --nice.
const AGENT_ALLOWS = "--begin,--nice";
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E({}, { alpha: { allowedSbatchArgs: ["--constraint", "--begin"] } });
  e2e.startAgent("alpha", { SLURMGATE_ALLOWED_SBATCH_ARGS: AGENT_ALLOWS });
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});

afterAll(async () => {
  await e2e?.close();
});

async function post(spec: Record<string, unknown>) {
  const res = await fetch(`${e2e.url}/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "refused", cluster: "alpha", command: ["true"], ...spec }),
  });
  return { status: res.status, body: (await res.json()) as { field?: string; detail?: string; id?: string } };
}

function doctor(cluster: "alpha" | "beta", env: Record<string, string>) {
  const nodeBin = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  const child = spawn(nodeBin, ["--import", "tsx", join(REPO, "agent/main.ts"), "doctor"], {
    cwd: REPO,
    env: e2e.agentEnv(cluster, env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  return new Promise<{ code: number | null; output: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, output })),
  );
}

describe("the gateway refuses what the real agent would", () => {
  it("publishes the agent's roots and allow-list in its inventory", async () => {
    const res = await fetch(`${e2e.url}/v1/clusters`, { headers: { authorization: `Bearer ${e2e.alice}` } });
    const { items } = (await res.json()) as { items: { name: string; inventory: Record<string, unknown> }[] };
    expect(items.find((c) => c.name === "alpha")?.inventory).toMatchObject({
      sharedRoots: [shared],
      allowedSbatchArgs: ["--begin", "--nice"],
    });
  });

  it("refuses owned options, options off either list, and paths outside the agent's roots with 422s", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ extraSbatchArgs: ["--hold"] }, "body.extraSbatchArgs.0", /set by slurmgate itself/],
      [{ extraSbatchArgs: ["--begin=now", "--comment=x"] }, "body.extraSbatchArgs.1", /set by slurmgate itself/],
      [{ extraSbatchArgs: ["--constraint=ib"] }, "body.extraSbatchArgs.0", /its agent does not.*on offer: --begin$/],
      [
        { extraSbatchArgs: ["--nice=10"] },
        "body.extraSbatchArgs.0",
        /'--nice' is not allowed on alpha; on offer: --begin$/,
      ],
      [
        { container: { image: "docker://alpine", binds: [{ src: "/etc" }] } },
        "body.container.binds.0.src",
        new RegExp(`outside alpha's shared roots; on offer: ${shared}`),
      ],
      [{ container: { image: "/opt/x.sif" } }, "body.container.image", /image \/opt\/x.sif is outside/],
    ];
    for (const [spec, field, detail] of cases) {
      const res = await post(spec);
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(res.body.field).toBe(field);
      expect(res.body.detail).toMatch(detail);
    }
  });

  it("runs a job with an option both sides allow", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "begin-now",
      cluster: "alpha",
      extraSbatchArgs: ["--begin=now"],
      command: ["echo", "began"],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id);
    expect([done.state, done.exitCode]).toEqual(["completed", 0]);
    expect(await e2e.logs(e2e.alice, job.id)).toBe("began\n");
    const script = readFileSync(join(shared, "alice", job.id, "job.sbatch"), "utf8");
    expect(script).toMatch(/^#SBATCH --begin=now$/m);
  });
});

describe("slurmgate agent doctor", () => {
  it("prints one FAIL line per difference from the cluster config and exits non-zero", async () => {
    const { code, output } = await doctor("alpha", { SLURMGATE_ALLOWED_SBATCH_ARGS: AGENT_ALLOWS });
    const lines = output.split("\n").filter((l) => l.includes("cluster config"));
    expect(lines, output).toEqual([
      "FAIL cluster config: --nice is in SLURMGATE_ALLOWED_SBATCH_ARGS but not in alpha's allowedSbatchArgs: the gateway refuses it",
      "FAIL cluster config: --constraint is in alpha's allowedSbatchArgs but not in SLURMGATE_ALLOWED_SBATCH_ARGS: the gateway refuses it, as this agent would",
    ]);
    expect(code).toBe(1);
  });

  it("passes when the agent and the cluster config agree", async () => {
    const { code, output } = await doctor("beta", {});
    expect(output).toMatch(
      /^ok {3}cluster config: shared roots and sbatch allow-list agree with beta's cluster config$/m,
    );
    expect(output).toMatch(/^ok {3}command spawner: \/usr\/bin\/python3 \(posix_spawn/m);
    expect(code, output).toBe(0);
  });
});
