/**
 * A real gateway stopped and started again on the same port and database while `sweepProgress`
 * and `slurmgate sweep submit --wait` follow a sweep: both ride out the restart and still see
 * every element that ended, including those that ended while nobody could ask.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type SweepElement } from "../../client/index.ts";
import { runCli } from "../cli/support.ts";
import { type GatewayProcess, freePort, startGatewayProcess } from "../helpers/gateway-process.ts";
import { seedWorld, type World } from "./support/world.ts";

let dir = "";
let port = 0;
let gw: GatewayProcess | undefined;
let world: World;

const start = async () => {
  gw = await startGatewayProcess({ PORT: String(port) }, { dbUrl: `file:${join(dir, "db")}` });
  return gw;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "slurmgate-sweep-outage-"));
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
const spec = (name: string) => ({ name, partition: "cpu", command: ["true"], resources: { time: "5m" } });

describe("a gateway restart while a sweep is followed", () => {
  it("sweepProgress and `sweep submit --wait` ride it out and see every element end", async () => {
    const created = await world.user.createSweep({ specs: [0, 1, 2].map((i) => spec(`restart-${i}`)) });
    const [a, b, c] = created.jobIds as [string, string, string];
    await world.agent.start(a);
    await world.agent.finish(a, "completed", 0);

    const outages: number[] = [];
    const client = createClient({
      baseUrl: url(),
      token: world.userToken,
      retry: { outageMs: 60_000, onOutage: (o) => outages.push(o.downForMs) },
    });
    const seen: SweepElement[] = [];
    const following = (async () => {
      for await (const element of client.sweepProgress(created.id, { pollMs: 100 })) {
        seen.push(element);
      }
    })();
    const env = { SLURMGATE_URL: url(), SLURMGATE_TOKEN: world.userToken };
    const cli = runCli(["sweep", "submit", "--wait", "--time", "5m", "--grid", "N=1,2", "--", "echo", "{N}"], {
      env,
      timeoutMs: 60_000,
    });
    // The CLI's sweep is stored (its `--wait` is following it) before the gateway goes away.
    const deadline = Date.now() + 20_000;
    while ((await world.user.listPage({ label: "N=2" })).items.length === 0) {
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(100);
    }
    await sleep(500);
    expect(seen.map((e) => e.index)).toEqual([0]);

    await gw?.stop();
    await sleep(1_500);
    await start();
    // Ended during the outage from the clients' point of view: the agent reports right after the restart.
    await world.agent.start(b);
    await world.agent.finish(b, "failed", 4);
    await world.agent.start(c);
    await world.agent.finish(c, "completed", 0);
    await following;
    expect(seen.map((e) => [e.index, e.state])).toEqual([
      [0, "completed"],
      [1, "failed"],
      [2, "completed"],
    ]);
    expect(outages.length).toBeGreaterThanOrEqual(1);

    // The CLI's sweep (submitted before the restart) is ended now, through the agent.
    const { items } = await world.user.listPage({ label: "N=1" });
    const cliJobs = [items[0]?.id, (await world.user.listPage({ label: "N=2" })).items[0]?.id];
    for (const id of cliJobs) {
      await world.agent.start(id as string);
      await world.agent.finish(id as string, "completed", 0);
    }
    const run = await cli;
    expect(run.stderr).not.toMatch(/error|unreachable for/i);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^swp_\S+ completed: 2\/2 done/m);
  }, 90_000);
});
