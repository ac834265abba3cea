/**
 * The client, unchanged, under real Deno against a real gateway (started by
 * test/client/deno.test.ts, which passes its URL and tokens in SG_* variables). The test plays the
 * agent over HTTP. Web APIs only: no node: imports here or in the client.
 */
import {
  createClient,
  type JobSpecInput,
  SlurmgateError,
  WaitTimeoutError,
  verifyWebhook,
} from "../../client/index.ts";
import { signWebhook } from "../../client/webhooks.ts";

type DenoLike = {
  test(name: string, fn: () => Promise<void>): void;
  env: { get(name: string): string | undefined };
};
const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;

function need(name: string): string {
  const value = deno.env.get(name);
  if (!value) {
    throw new Error(`${name} is not set; run this through test/client/deno.test.ts`);
  }
  return value;
}
function assert(condition: unknown, message: string): asserts condition {
  if (!condition) {
    throw new Error(`assertion failed: ${message}`);
  }
}
function assertEquals(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  assert(a === e, `${what}: expected ${e}, got ${a}`);
}

const url = need("SG_URL");
const user = createClient({ baseUrl: url, token: need("SG_USER_TOKEN") });
const agent = createClient({ baseUrl: url, token: need("SG_AGENT_TOKEN") });
const epochs = new Map<string, number>();
const offsets = new Map<string, number>();

async function leaseAll(): Promise<void> {
  const { data, error } = await agent.raw.POST("/v1/agent/lease", {
    body: { agentId: "deno-agent", max: 50, wait: 1, holding: [...epochs.keys()] },
  });
  assert(!error && data, `lease: ${error?.detail}`);
  for (const lease of data.leases) {
    epochs.set(lease.jobId, lease.epoch);
  }
}

async function report(
  id: string,
  fields: {
    state?: "submitted" | "running" | "completed" | "failed";
    slurmJobId?: string;
    exitCode?: number;
    text?: string;
  },
) {
  for (let i = 0; i < 10 && !epochs.has(id); i++) {
    await leaseAll();
  }
  const epoch = epochs.get(id);
  assert(epoch !== undefined, `could not lease ${id}`);
  const logs = [];
  if (fields.text) {
    const bytes = new TextEncoder().encode(fields.text);
    const offset = offsets.get(id) ?? 0;
    offsets.set(id, offset + bytes.length);
    logs.push({ stream: "stdout" as const, offset, data: btoa(String.fromCharCode(...bytes)) });
  }
  const { text: _text, ...rest } = fields;
  const { error } = await agent.raw.POST("/v1/agent/reports", {
    body: { agentId: "deno-agent", reports: [{ jobId: id, epoch, logs, ...rest }] },
  });
  assert(!error, `report: ${error?.detail}`);
}

const spec = (name: string): JobSpecInput => ({
  name,
  partition: "cpu",
  command: ["echo", "deno"],
  resources: { time: "5m" },
});

deno.test("me, clusters and typed errors", async () => {
  assertEquals((await user.me()).user, "alice", "me");
  assertEquals(
    (await user.clusters()).map((c) => c.name),
    ["hpc1"],
    "clusters",
  );
  const err = await user.submit({ ...spec("bad"), resources: { time: "forever" } }).catch((e: unknown) => e);
  assert(err instanceof SlurmgateError, "a SlurmgateError");
  assertEquals([err.status, err.code, err.field], [422, "validation_failed", "body.resources.time"], "problem");
});

deno.test("submit, wait by long-poll, follow logs", async () => {
  const job = await user.submit(spec("deno-run"), { idempotencyKey: `deno-${Date.now()}` });
  assertEquals(job.state, "queued", "submitted state");
  const states: string[] = [];
  const waiting = user.wait(job.id, { onEvent: (e) => e.state && states.push(e.state) });
  const chunks: string[] = [];
  const following = (async () => {
    for await (const text of user.logs(job.id, { follow: true })) {
      chunks.push(text);
    }
  })();
  await report(job.id, { state: "submitted", slurmJobId: "99" });
  await report(job.id, { state: "running", text: "hello " });
  await report(job.id, { text: "from deno\n" });
  await report(job.id, { state: "completed", exitCode: 0 });
  const done = await waiting;
  await following;
  assertEquals(done.state, "completed", "final state");
  assertEquals(states, ["queued", "leased", "submitted", "running", "completed"], "events");
  assertEquals(chunks.join(""), "hello from deno\n", "logs");
});

deno.test("list, cancel, wait timeout, abort, sweep", async () => {
  const tag = `deno${Date.now()}`;
  const jobs = await user.sweep(
    {
      base: { ...spec("sweep"), labels: { tag } },
      params: [{ env: { I: "0" } }, { env: { I: "1" } }, { env: { I: "2" } }],
    },
    { concurrency: 2 },
  );
  assertEquals(
    jobs.map((j) => j.name),
    ["sweep-0", "sweep-1", "sweep-2"],
    "sweep names",
  );
  const listed: string[] = [];
  for await (const j of user.list({ label: { tag }, pageSize: 1 })) {
    listed.push(j.id);
  }
  assertEquals(listed.sort(), jobs.map((j) => j.id).sort(), "list across pages");
  const first = jobs[0];
  assert(first, "a job");
  const timedOut = await user.wait(first.id, { timeout: 800 }).catch((e: unknown) => e);
  assert(timedOut instanceof WaitTimeoutError, "WaitTimeoutError");
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 200);
  const aborted = await user.wait(first.id, { signal: controller.signal }).catch((e: unknown) => e);
  assertEquals((aborted as Error).name, "AbortError", "abort");
  for (const j of jobs) {
    assertEquals((await user.cancel(j.id)).state, "cancelled", "cancel");
  }
});

deno.test("webhooks: register and verify a signature with WebCrypto", async () => {
  const hook = await user.createWebhook({ url: "https://hooks.example.org/deno", events: ["job.completed"] });
  assert(hook.secret.startsWith("whsec_"), "the secret is shown on create");
  assert(!("secret" in (await user.getWebhook(hook.id))), "reads never show the secret");
  const body = JSON.stringify({ type: "job.completed", data: { jobId: "job_x" } });
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = new Headers({
    "webhook-id": "msg_deno",
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signWebhook(hook.secret, "msg_deno", timestamp, body),
  });
  assertEquals((await verifyWebhook({ secret: hook.secret, headers, body })).valid, true, "verifies");
  assertEquals((await verifyWebhook({ secret: hook.secret, headers, body: `${body} ` })).valid, false, "tampered");
  await user.deleteWebhook(hook.id);
});
