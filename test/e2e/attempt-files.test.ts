/**
 * Outputs and browsing per attempt on real Slurm: attempt 1 writes results/out.json and times out;
 * while the retry waits in the queue, browsing shows attempt 1's directory (not a 409) and the
 * listing shows attempt 1's output; once attempt 2 has written the same path, both attempts' bytes
 * come back, each by its attempt, and the listing shows the newest.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Job, createClient } from "../../client/index.ts";
import { type E2E, startE2E } from "./harness.ts";

let e2e: E2E;
const out = mkdtempSync(join(tmpdir(), "sg-attempt-files-"));

beforeAll(async () => {
  e2e = await startE2E();
  e2e.startAgent("alpha");
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});

afterAll(async () => {
  await e2e?.close();
  rmSync(out, { recursive: true, force: true });
});

describe("outputs and browsing per attempt on real Slurm", () => {
  it("keeps each attempt's output at the same path, and browses the last run of a job back in the queue", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const job = await client.submit({
      name: "attempt-files",
      cluster: "alpha",
      resources: { time: "1" },
      outputs: ["results/*.json"],
      // Long enough a wait before attempt 2 to look at attempt 1 while the job is queued again.
      retries: { max: 1, onTimeout: true, onPreemption: false, onNodeFail: false, backoffSeconds: 60 },
      script: [
        'mkdir -p "$SLURMGATE_JOB_DIR/results"',
        'echo "{\\"attempt\\":$SLURMGATE_ATTEMPT}" > "$SLURMGATE_JOB_DIR/results/out.json"',
        'if [ "$SLURMGATE_ATTEMPT" = 1 ]; then echo "why it failed" > "$SLURMGATE_JOB_DIR/notes.txt"; sleep 600; fi',
      ].join("\n"),
    });

    let requeued: Job | undefined;
    for (const t0 = Date.now(); Date.now() - t0 < 240_000; await new Promise((r) => setTimeout(r, 1_000))) {
      const now = await client.get(job.id);
      if (now.attempt === 2 && now.state === "queued") {
        requeued = now;
        break;
      }
      expect(now.attempt, JSON.stringify(now)).toBe(1);
    }
    expect(requeued, "attempt 2 was never queued").toBeDefined();

    const dir = await client.browse(job.id);
    expect(dir.attempt).toBe(1);
    expect(dir.entries.map((e) => e.name)).toEqual(expect.arrayContaining(["notes.txt", "results", "stdout"]));
    const notes = await client.head(job.id, "notes.txt");
    expect(new TextDecoder().decode(notes.bytes)).toBe("why it failed\n");
    expect(await client.listFiles(job.id)).toMatchObject([{ path: "results/out.json", attempt: 1 }]);

    const done = await client.wait(job.id, { timeout: 300_000 });
    expect(done).toMatchObject({ state: "completed", attempt: 2 });
    expect(await client.listFiles(job.id)).toMatchObject([{ path: "results/out.json", attempt: 2 }]);
    await client.download(job.id, "results/out.json", join(out, "newest.json"));
    expect(readFileSync(join(out, "newest.json"), "utf8")).toBe('{"attempt":2}\n');
    await client.download(job.id, "results/out.json", join(out, "first.json"), { attempt: 1 });
    expect(readFileSync(join(out, "first.json"), "utf8")).toBe('{"attempt":1}\n');
    // Browsing now reads attempt 2's directory by default, attempt 1's by name.
    const now = await client.browse(job.id);
    expect(now.attempt).toBe(2);
    expect(now.entries.map((e) => e.name)).not.toContain("notes.txt");
    expect((await client.browse(job.id, "", { attempt: 1 })).entries.map((e) => e.name)).toContain("notes.txt");
  }, 600_000);
});
