/**
 * The submit pacer keeps sbatch calls under the configured rate even with several submitters.
 */
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import type { AgentContext } from "../../agent/context.ts";
import { createPacer } from "../../agent/cycle.ts";

describe("submit pacer", () => {
  it("gives concurrent submitters distinct slots at the configured rate", async () => {
    const clock = 1_000;
    const config = parseAgentConfig({
      SLURMGATE_URL: "http://gw",
      SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(43)}`,
      SLURMGATE_CLUSTER: "alpha",
      SLURMGATE_SHARED_ROOTS: "/shared",
      SLURMGATE_SUBMITS_PER_SECOND: "4",
    });
    const ctx = { config, now: () => clock } as unknown as AgentContext;
    const waits: number[] = [];
    const pacer = createPacer(ctx, async (ms) => {
      waits.push(ms);
    });
    await Promise.all(Array.from({ length: 5 }, () => pacer.beforeSubmit()));
    // 4/s = one slot every 250 ms: the first goes at once, the others wait 250, 500, 750, 1000 ms.
    expect([...waits].sort((a, b) => a - b)).toEqual([250, 500, 750, 1000]);
  });
});
