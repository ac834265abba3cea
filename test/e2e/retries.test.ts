/**
 * Retries and array tasks on real Slurm: a job that times out once and succeeds on its second
 * attempt keeps both attempts' logs whole, names both Slurm jobs in its events, can read what its
 * first attempt wrote, and `client.wait()` returns only at the end of the final attempt. An array
 * job's tasks each have their own log, served by task.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { type E2E, slurmClusters, slurmJobsTagged, startE2E } from "./harness.ts";

const shared = slurmClusters().alpha.sharedRoot;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
  // 1 KiB per job per cycle: attempt 1's last burst is still being shipped when attempt 2 is leased.
  e2e.startAgent("alpha", { SLURMGATE_LOG_BYTES_PER_JOB: "1024" });
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});

afterAll(async () => {
  await e2e?.close();
});

const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}\n`).join("");

async function fullLog(id: string, query: string): Promise<string> {
  let out = "";
  for (let offset = 0; ; ) {
    const res = await fetch(`${e2e.url}/v1/jobs/${id}/logs?offset=${offset}&${query}`, {
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    const chunk = (await res.json()) as { data: string; nextOffset: number };
    expect(res.status, JSON.stringify(chunk)).toBe(200);
    if (chunk.nextOffset === offset) {
      return out;
    }
    out += chunk.data;
    offset = chunk.nextOffset;
  }
}

describe("retries on real Slurm", () => {
  it("follows a job that timed out once to its final attempt, with both attempts' logs and Slurm ids", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const payload = [
      'echo "attempt $SLURMGATE_ATTEMPT"',
      'echo "err of $SLURMGATE_ATTEMPT" >&2',
      'echo "mine $SLURMGATE_ATTEMPT" > "$SLURMGATE_JOB_DIR/mine"',
      'if [ "$SLURMGATE_ATTEMPT" = 1 ]; then',
      '  echo checkpoint-41 > "$SLURMGATE_JOB_DIR/ckpt"',
      // Slurm's SIGTERM at the time limit: a last burst of output, more than one cycle ships.
      "  trap 'seq -f late-%g 1 1500; exit 143' TERM",
      "  sleep 600 & wait",
      "fi",
      'echo "previous=$SLURMGATE_PREVIOUS_JOB_DIR"',
      'echo "resumed from $(cat "$SLURMGATE_PREVIOUS_JOB_DIR/ckpt")"',
    ].join("\n");
    const submitted = await client.submit({
      name: "resumable",
      cluster: "alpha",
      resources: { time: "1" },
      retries: { max: 1, onTimeout: true, onPreemption: false, onNodeFail: false, backoffSeconds: 2 },
      script: payload,
    });
    const done = await client.wait(submitted.id, { timeout: 400_000 });
    expect(done).toMatchObject({ state: "completed", attempt: 2, exitCode: 0 });

    const first = join(shared, "alice", submitted.id);
    const second = join(shared, "alice", `${submitted.id}.attempt-2`);
    expect(await fullLog(done.id, "attempt=1")).toBe(`attempt 1\n${lines("late-", 1500)}`);
    expect(await fullLog(done.id, "attempt=1&stream=stderr")).toContain("err of 1\n");
    const latest = `attempt 2\nprevious=${first}\nresumed from checkpoint-41\n`;
    expect(await fullLog(done.id, "attempt=2")).toBe(latest);
    expect(await fullLog(done.id, "")).toBe(latest);
    expect(await fullLog(done.id, "attempt=2&stream=stderr")).toBe("err of 2\n");
    // The client reads attempt by attempt too.
    let viaClient = "";
    for await (const text of client.logs(done.id, { attempt: 1 })) {
      viaClient += text;
    }
    expect(viaClient).toBe(`attempt 1\n${lines("late-", 1500)}`);

    // Attempt 2 ran in its own directory: attempt 1's files are as attempt 1 left them.
    expect(readFileSync(join(first, "mine"), "utf8")).toBe("mine 1\n");
    expect(readFileSync(join(second, "mine"), "utf8")).toBe("mine 2\n");
    expect(readFileSync(join(first, "stdout"), "utf8")).toBe(`attempt 1\n${lines("late-", 1500)}`);

    // Both Slurm jobs, and how the first ended, are in the events.
    const tagged = slurmJobsTagged("alpha", done.id);
    expect(tagged).toHaveLength(2);
    const details = (await client.get(done.id)).events?.map((e) => e.detail ?? "").join("\n") ?? "";
    const firstSlurmId = tagged.find((id) => id !== done.slurmJobId)!;
    expect(details).toContain(`attempt 1 (slurm job ${firstSlurmId}) ended timeout; retrying as attempt 2 of 2`);
    expect(details).toContain(`slurm job ${done.slurmJobId}`);
  }, 480_000);
});

describe("array tasks' logs on real Slurm", () => {
  it("serves each task's own stdout and stderr, and refuses a task the array does not have", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const job = await client.submit({
      name: "tasks",
      cluster: "alpha",
      array: { indexes: "0-6:2" },
      command: ["bash", "-c", 'echo "task $SLURM_ARRAY_TASK_ID"; echo "warn $SLURM_ARRAY_TASK_ID" >&2'],
    });
    await client.wait(job.id, { timeout: 180_000 });
    for (const task of [0, 2, 4, 6]) {
      expect(await fullLog(job.id, `task=${task}`)).toBe(`task ${task}\n`);
      expect(await fullLog(job.id, `task=${task}&stream=stderr`)).toBe(`warn ${task}\n`);
      let viaClient = "";
      for await (const text of client.logs(job.id, { task, follow: true })) {
        viaClient += text;
      }
      expect(viaClient).toBe(`task ${task}\n`);
    }
    const res = await fetch(`${e2e.url}/v1/jobs/${job.id}/logs?task=3`, {
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(await res.json()).toMatchObject({ field: "query.task" });
  }, 240_000);
});
