/**
 * A real gateway process stopped and started again on the same port and database while the client
 * and the CLI wait and follow logs: they ride out an outage of more than 60 s, say so once on a
 * terminal, and give up with one clear error after the configured bound. `wait()` also follows a
 * retried job to its final attempt.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatewayUnavailableError, createClient } from "../../client/index.ts";
import { type GatewayProcess, freePort, startGatewayProcess } from "../helpers/gateway-process.ts";
import { runCli, runCliInTty } from "../cli/support.ts";
import { FakeAgent, type World, seedWorld } from "./support/world.ts";

let dir = "";
let port = 0;
let gw: GatewayProcess | undefined;
let world: World;

const start = async () => {
  gw = await startGatewayProcess({ PORT: String(port) }, { dbUrl: `file:${join(dir, "db")}` });
  return gw;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slurmgate-outage-"));
  port = await freePort();
  const first = await start();
  world = await seedWorld(first.url, first.adminToken);
});

afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = () => `http://127.0.0.1:${port}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("wait() and a retried job", () => {
  it("does not return at attempt 1's timeout when a retry queued attempt 2", async () => {
    const job = await world.user.submit({
      name: "retried",
      command: ["true"],
      retries: { max: 1, onTimeout: true, onPreemption: false, onNodeFail: false },
    });
    const events: string[] = [];
    let settled = false;
    const waiting = world.user.wait(job.id, { pollSeconds: 1, onEvent: (e) => e.state && events.push(e.state) });
    waiting.finally(() => (settled = true)).catch(() => {});
    await world.agent.start(job.id, "501");
    await world.agent.log(job.id, "one\n");
    await world.agent.finish(job.id, "timeout", 0);
    await sleep(1_500);
    expect(events).toContain("timeout");
    expect(settled).toBe(false);
    world.agent.epochs.delete(job.id);
    world.agent.offsets.delete(`${job.id}:stdout`);
    await world.agent.start(job.id, "502");
    await world.agent.log(job.id, "two\n");
    await world.agent.finish(job.id, "completed", 0);
    const done = await waiting;
    expect(done).toMatchObject({ state: "completed", attempt: 2, slurmJobId: "502" });

    // The CLI reads each attempt's log, and says what is wrong with an attempt or task it cannot have.
    const env = { SLURMGATE_URL: url(), SLURMGATE_TOKEN: world.userToken };
    const [latest, first, missing, zero, task] = await Promise.all([
      runCli(["logs", job.id], { env }),
      runCli(["logs", "--attempt", "1", job.id], { env }),
      runCli(["logs", "--attempt", "3", job.id], { env }),
      runCli(["logs", "--attempt", "0", job.id], { env }),
      runCli(["logs", "--task", "1", job.id], { env }),
    ]);
    expect(latest.stdout).toBe("two\n");
    expect(first.stdout).toBe("one\n");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      "slurmgate: query.attempt: attempt 3: the job has had 2 attempt(s) so far (422 validation_failed)\n",
    );
    expect(zero.code).toBe(2);
    expect(task.code).toBe(1);
    expect(task.stderr).toContain("task 1: the job is not an array job (422 validation_failed)");
  }, 120_000);
});

describe("a gateway restart during wait and logs -f", () => {
  it("rides out a 65 s outage in the client, `slurmgate wait` and `slurmgate logs -f`, then finishes", async () => {
    const job = await world.user.submit({ name: "outage", command: ["true"] });
    await world.agent.start(job.id);
    await world.agent.log(job.id, "before\n");
    const env = { SLURMGATE_URL: url(), SLURMGATE_TOKEN: world.userToken };
    const client = createClient({ baseUrl: url(), token: world.userToken, retry: { outageMs: 120_000 } });
    const outages: number[] = [];
    const waiting = client.wait(job.id, { pollSeconds: 2 });
    const following = (async () => {
      let text = "";
      const c = createClient({
        baseUrl: url(),
        token: world.userToken,
        retry: { onOutage: (o) => outages.push(o.downForMs) },
      });
      for await (const chunk of c.logs(job.id, { follow: true, pollSeconds: 2 })) {
        text += chunk;
      }
      return text;
    })();
    const cliWait = runCli(["wait", job.id], { env, timeoutMs: 170_000 });
    const cliLogs = runCli(["logs", "-f", job.id], { env, timeoutMs: 170_000 });
    const ttyWait = runCliInTty(["wait", job.id], env);
    await sleep(3_000);

    await gw?.stop();
    gw = undefined;
    await sleep(65_000);
    await start();

    const agent = new FakeAgent(url(), world.agentToken);
    agent.epochs.set(job.id, world.agent.epochs.get(job.id)!);
    agent.offsets.set(`${job.id}:stdout`, 7);
    await agent.log(job.id, "after\n");
    await agent.finish(job.id, "completed", 0);

    expect((await waiting).state).toBe("completed");
    expect(await following).toBe("before\nafter\n");
    expect(outages[0]).toBe(0);
    // The last failed try falls within one maximum backoff (10 s) of the gateway's return after 65 s.
    expect(outages.at(-1)).toBeGreaterThan(50_000);
    const waited = await cliWait;
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stdout).toContain(`${job.id} completed`);
    expect(waited.stderr).toBe("");
    const followed = await cliLogs;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toBe("before\nafter\n");
    const tty = await ttyWait;
    expect(tty.code, tty.stdout).toBe(0);
    // One line for the whole outage, however many tries it took.
    expect(tty.stdout.match(/gateway unreachable, retrying…/g)).toHaveLength(1);
  }, 200_000);

  it("gives up after the configured bound with one clear error", async () => {
    const job = await world.user.submit({ name: "give-up", command: ["true"] });
    const env = { SLURMGATE_URL: url(), SLURMGATE_TOKEN: world.userToken, SLURMGATE_OUTAGE_SECONDS: "4" };
    await gw?.stop();
    gw = undefined;
    try {
      const client = createClient({ baseUrl: url(), token: world.userToken, retry: { outageMs: 3_000 } });
      const started = Date.now();
      const err = await client.wait(job.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayUnavailableError);
      expect((err as Error).message).toMatch(
        /^gateway unreachable for \ds, giving up: cannot reach http:\/\/127\.0\.0\.1:/,
      );
      expect(Date.now() - started).toBeLessThan(15_000);
      const cli = await runCli(["wait", job.id], { env, timeoutMs: 30_000 });
      expect(cli.code).toBe(1);
      expect(cli.stderr.trim().split("\n")).toHaveLength(1);
      expect(cli.stderr).toMatch(/gateway unreachable for \ds, giving up: cannot reach/);
      const bad = await runCli(["wait", job.id], { env: { ...env, SLURMGATE_OUTAGE_SECONDS: "soon" } });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain("SLURMGATE_OUTAGE_SECONDS must be a whole number of seconds");
    } finally {
      await start();
    }
  }, 60_000);
});
