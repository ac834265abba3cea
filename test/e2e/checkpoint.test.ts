/**
 * Resume from checkpoint on real Slurm: a counter job asks for USR1 before its time limit, saves
 * its count into SLURMGATE_CHECKPOINT_DIR when the signal comes, hits its one-minute limit twice
 * and finishes on its third attempt, having resumed each time from what the attempt before saved.
 * Its logs read as one log across the three attempts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { type E2E, slurmClusters, startE2E } from "./harness.ts";

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

const COUNTER = [
  "n=0",
  'if [ -f "$SLURMGATE_CHECKPOINT_DIR/count" ]; then n=$(cat "$SLURMGATE_CHECKPOINT_DIR/count"); fi',
  'echo "attempt $SLURMGATE_ATTEMPT resumes at $n"',
  "start=$n",
  'trap \'echo "$n" > "$SLURMGATE_CHECKPOINT_DIR/count"; echo "checkpoint at $n"\' USR1',
  "trap 'echo \"time limit at $n\"; exit 143' TERM",
  "while :; do",
  "  n=$((n + 1))",
  '  if [ "$SLURMGATE_ATTEMPT" = 3 ] && [ "$n" -ge $((start + 3)) ]; then echo "done at $n"; exit 0; fi',
  // In the background, so a signal's trap runs at once instead of after the sleep.
  "  sleep 1 & wait $!",
  "done",
].join("\n");

describe("resume from checkpoint on real Slurm", () => {
  it("signals before the time limit, keeps one checkpoint directory, and finishes on the third attempt", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const submitted = await client.submit({
      name: "counter",
      cluster: "alpha",
      resources: { time: "1" },
      checkpoint: { signal: "USR1", secondsBeforeLimit: 40 },
      retries: { max: 2, onTimeout: true, onPreemption: false, onNodeFail: false, backoffSeconds: 1 },
      script: COUNTER,
    });
    const done = await client.wait(submitted.id, { timeout: 420_000 });
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", attempt: 3, exitCode: 0 });

    const perAttempt: string[] = [];
    for (const attempt of [1, 2, 3]) {
      let text = "";
      for await (const chunk of client.logs(done.id, { attempt })) {
        text += chunk;
      }
      perAttempt.push(text);
    }
    // Attempts 1 and 2: the checkpoint signal came before Slurm's SIGTERM at the limit.
    let resumeAt = 0;
    for (const [i, log] of perAttempt.slice(0, 2).entries()) {
      const lines = log.trim().split("\n");
      expect(lines[0], log).toBe(`attempt ${i + 1} resumes at ${resumeAt}`);
      const saved = lines.find((l) => l.startsWith("checkpoint at "));
      expect(saved, log).toBeDefined();
      expect(lines.indexOf(saved!), log).toBeLessThan(lines.findIndex((l) => l.startsWith("time limit at ")));
      const count = Number(saved!.slice("checkpoint at ".length));
      expect(count).toBeGreaterThan(resumeAt);
      resumeAt = count;
    }
    expect(perAttempt[2]).toBe(`attempt 3 resumes at ${resumeAt}\ndone at ${resumeAt + 3}\n`);
    // One checkpoint directory for every attempt, inside the first attempt's directory.
    expect(readFileSync(join(shared, "alice", done.id, "checkpoint", "count"), "utf8")).toBe(`${resumeAt}\n`);

    // One continuous log across the attempts, through the client and the CLI's --all-attempts path.
    let all = "";
    for await (const chunk of client.logs(done.id, { allAttempts: true })) {
      all += chunk;
    }
    expect(all).toBe(perAttempt.join(""));
    const details = (await client.get(done.id)).events?.map((e) => e.detail ?? "").join("\n") ?? "";
    expect(details).toMatch(/attempt 1 \(slurm job \d+\) ended timeout; retrying as attempt 2 of 3/);
    expect(details).toMatch(/attempt 2 \(slurm job \d+\) ended timeout; retrying as attempt 3 of 3/);
  }, 480_000);
});
