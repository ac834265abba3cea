/**
 * The real `slurmgate wait` over a real gateway's event stream: exit 0 when the job completed, 3
 * when it ended otherwise, and one stream request for the whole wait (no ?wait= long-polls).
 */
import { mkdtempSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type World, seedWorld } from "../client/support/world.ts";
import { createTestGateway } from "../helpers/gateway.ts";
import { runCli } from "./support.ts";

// The CLI is Node + tsx: slow to start on a loaded 2-core machine.
const SLOW = 120_000;

type Seen = { path: string; wait: string | null; accept: string };

let server: ReturnType<typeof serve>;
let world: World;
let env: Record<string, string>;
const seen: Seen[] = [];

beforeAll(async () => {
  const test = await createTestGateway({ SLURMGATE_SSE_HEARTBEAT_SECONDS: "1" });
  // Every request the gateway is asked, as it arrives.
  const fetch = (request: Request) => {
    const url = new URL(request.url);
    seen.push({ path: url.pathname, wait: url.searchParams.get("wait"), accept: request.headers.get("accept") ?? "" });
    return test.app.fetch(request);
  };
  server = serve({ fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  world = await seedWorld(url, await test.user("root", true));
  const home = mkdtempSync(join(tmpdir(), "slurmgate-wait-sse-"));
  env = { SLURMGATE_URL: url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: home, HOME: home };
});
afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** Resolves once the gateway has been asked for `id`'s event stream. */
async function streamOpened(id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!seen.some((r) => r.path === `/v1/jobs/${id}/events` && r.accept.includes("text/event-stream"))) {
    if (Date.now() > deadline) {
      throw new Error("the CLI never asked for the event stream");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const eventRequests = (id: string) => seen.filter((r) => r.path === `/v1/jobs/${id}/events`);

describe("slurmgate wait over server-sent events", () => {
  it(
    "exits 0 when the job completes and 3 when it fails, over one stream each",
    async () => {
      const ok = await world.user.submit({ name: "cli-ok", command: ["true"] });
      const bad = await world.user.submit({ name: "cli-bad", command: ["false"] });
      const waits = [
        runCli(["wait", ok.id], { env, timeoutMs: SLOW }),
        runCli(["wait", bad.id], { env, timeoutMs: SLOW }),
      ];
      await Promise.all([streamOpened(ok.id), streamOpened(bad.id)]);
      await world.agent.start(ok.id, "81");
      await world.agent.start(bad.id, "82");
      await world.agent.finish(ok.id, "completed");
      await world.agent.finish(bad.id, "failed", 1);
      const [done, failed] = await Promise.all(waits);
      expect(done?.code, done?.stderr).toBe(0);
      expect(done?.stdout).toContain(ok.id);
      expect(failed?.code, failed?.stderr).toBe(3);
      for (const id of [ok.id, bad.id]) {
        expect(eventRequests(id)).toEqual([{ path: `/v1/jobs/${id}/events`, wait: "0", accept: "text/event-stream" }]);
      }
    },
    SLOW,
  );

  it(
    "--until running exits 0 at running; --timeout exits 4 with the stream still open",
    async () => {
      const job = await world.user.submit({ name: "cli-until", command: ["true"] });
      const until = runCli(["wait", "--until", "running", job.id], { env, timeoutMs: SLOW });
      await streamOpened(job.id);
      await world.agent.start(job.id, "83");
      const reached = await until;
      expect(reached.code, reached.stderr).toBe(0);
      const timedOut = await runCli(["wait", "--timeout", "2s", job.id], { env, timeoutMs: SLOW });
      expect(timedOut.code, timedOut.stderr).toBe(4);
      expect(eventRequests(job.id).every((r) => r.accept === "text/event-stream" && r.wait === "0")).toBe(true);
    },
    SLOW,
  );
});
