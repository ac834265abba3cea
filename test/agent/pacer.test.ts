/**
 * The pacer keeps sbatch calls under the configured rate even with several submitters, and waits
 * after a slow track in proportion to it (TRACK_SHARE; test/agent/track-share.test.ts drives cycles).
 */
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import type { AgentContext } from "../../agent/context.ts";
import { createPacer } from "../../agent/cycle.ts";

const configWith = (extra: Record<string, string>) =>
  parseAgentConfig({
    SLURMGATE_URL: "http://gw",
    SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(43)}`,
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: "/shared",
    ...extra,
  });

describe("submit pacer", () => {
  it("gives concurrent submitters distinct slots at the configured rate", async () => {
    const clock = 1_000;
    const config = configWith({ SLURMGATE_SUBMITS_PER_SECOND: "4" });
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

describe("the pacer's least wait after a track", () => {
  const config = configWith({ SLURMGATE_TRACK_MIN_SECONDS: "2", SLURMGATE_TRACK_MAX_SECONDS: "60" });
  const pacerAt = () => createPacer({ config, now: () => 0 } as unknown as AgentContext, async () => {});

  it("waits four times a slow listing's duration, even when things changed and a job was just submitted", () => {
    const pacer = pacerAt();
    pacer.listed(7_000);
    pacer.tracked(17_000, true);
    pacer.submittedNow(17_500);
    expect(pacer.trackDue(44_999)).toBe(false);
    expect(pacer.trackDue(45_000)).toBe(true);
  });

  it("never waits longer than SLURMGATE_TRACK_MAX_SECONDS, however long the listing took", () => {
    const pacer = pacerAt();
    pacer.listed(100_000);
    pacer.tracked(100_000, false);
    expect(pacer.msUntilTrack(100_000)).toBe(60_000);
  });

  it("leaves a fast listing's pace alone: 2 s after a change, 2 s after a submission", () => {
    const pacer = pacerAt();
    pacer.listed(50);
    pacer.tracked(50, true);
    expect(pacer.msUntilTrack(50)).toBe(2_000);
    pacer.listed(50);
    pacer.tracked(2_100, false);
    expect(pacer.msUntilTrack(2_100)).toBe(4_000);
    pacer.submittedNow(3_000);
    expect(pacer.msUntilTrack(3_000)).toBe(2_000);
    // A track that spent 8 s shipping logs after a 50 ms listing is no slow listing.
    pacer.listed(50);
    pacer.tracked(13_000, true);
    expect(pacer.msUntilTrack(13_000)).toBe(2_000);
  });
});
