/**
 * The agent's submission pipeline on real Slurm (alpha) with a real gateway: within one cycle the
 * next sbatch is queued behind the running one (agent/executor/lane.ts) and the "submitted" reports
 * go to the gateway together, not one request per job. Concurrency stays what was configured: the
 * agent's sbatch is a wrapper that logs when each real sbatch starts and ends, and every job still
 * reaches Slurm exactly once.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentHandle, createAgent } from "../../agent/agent.ts";
import { parseAgentConfig } from "../../agent/config.ts";
import type { Report } from "../../agent/gateway-api.ts";
import { type E2E, slurm, slurmJobsTagged, startE2E } from "./harness.ts";

const bin = mkdtempSync(join(tmpdir(), "sg-pipe-bin-"));
const callLog = join(bin, "calls");

// `start`/`end` lines around each real sbatch: two starts in a row would be two sbatch at once.
const WRAPPER = `#!/bin/bash
[[ $1 == --version ]] && exec /usr/bin/sbatch "$@"
echo "start $$" >> '${callLog}'
/usr/bin/sbatch "$@"
st=$?
echo "end $$" >> '${callLog}'
exit $st
`;

let e2e: E2E;
let agent: AgentHandle | undefined;
beforeAll(async () => {
  for (const cmd of ["squeue", "sacct", "scontrol", "scancel", "sinfo", "sacctmgr"]) {
    symlinkSync(`/usr/bin/${cmd}`, join(bin, cmd));
  }
  writeFileSync(join(bin, "sbatch"), WRAPPER);
  chmodSync(join(bin, "sbatch"), 0o755);
  e2e = await startE2E({}, { alpha: { allowedSbatchArgs: ["--begin"] } });
}, 60_000);

afterAll(async () => {
  agent?.stop();
  await e2e?.close();
  rmSync(bin, { recursive: true, force: true });
});

describe("one cycle with many leases", () => {
  it.each([1, 2])(
    "submits each job once with %i sbatch at a time, and reports them in few requests",
    async (concurrency) => {
      writeFileSync(callLog, "");
      const jobs = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          e2e.submit(e2e.alice, {
            name: `pipe-${concurrency}-${i}`,
            cluster: "alpha",
            command: ["true"],
            extraSbatchArgs: ["--begin=now+1hour"], // kept from running: only submission is under test
          }),
        ),
      );
      const env = e2e.agentEnv("alpha", {
        SLURMGATE_SLURM_BIN: bin,
        SLURMGATE_ALLOWED_SBATCH_ARGS: "--begin",
        SLURMGATE_SUBMITS_PER_SECOND: "1000",
        SLURMGATE_SUBMIT_CONCURRENCY: String(concurrency),
        SLURMGATE_MAX_LEASE: "20",
        SLURMGATE_STATE_FILE: join(bin, `state-${concurrency}.json`),
      });
      agent = await createAgent(parseAgentConfig(env), env, { log: () => {} });
      const real = agent.ctx.api;
      const requests: Report[][] = [];
      agent.ctx.api = {
        ...real,
        report: (agentId, reports) => {
          requests.push(reports);
          return real.report(agentId, reports);
        },
      };
      const stats = await agent.runOnce();
      agent.stop();
      agent = undefined;
      expect(stats).toMatchObject({ leased: 10, submitted: 10, errors: [] });

      const submitted = requests.map((r) => r.filter((x) => x.state === "submitted").length).filter((n) => n > 0);
      expect(submitted.reduce((a, b) => a + b, 0)).toBe(10);
      // One request per job before; now what gathers while sbatch runs goes together.
      expect(submitted.length).toBeLessThanOrEqual(4);

      const lines = readFileSync(callLog, "utf8").split("\n").filter(Boolean);
      expect(lines.filter((l) => l.startsWith("start"))).toHaveLength(10);
      let inFlight = 0;
      let most = 0;
      for (const line of lines) {
        inFlight += line.startsWith("start") ? 1 : -1;
        most = Math.max(most, inFlight);
      }
      expect(most).toBeLessThanOrEqual(concurrency);

      const ids: string[] = [];
      for (const job of jobs) {
        const tagged = slurmJobsTagged("alpha", job.id);
        expect(tagged).toHaveLength(1);
        ids.push(...tagged);
      }
      slurm("alpha", "scancel", ids);
    },
    120_000,
  );
});
