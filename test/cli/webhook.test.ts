/**
 * `slurmgate webhook` against a real gateway: add prints the secret once, ls never does, the
 * delivery log, rm, and one readable line for every bad input.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { seedWorld } from "../client/support/world.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { runCli } from "./support.ts";

let gw: GatewayProcess;
let env: Record<string, string>;

beforeAll(async () => {
  gw = await startGatewayProcess();
  const world = await seedWorld(gw.url, gw.adminToken);
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-webhook-cli-"));
  env = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: dir, HOME: dir };
});
afterAll(async () => {
  await gw?.stop();
});

function oneLine(stderr: string): string {
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(stderr.startsWith("slurmgate: ")).toBe(true);
  return stderr.trimEnd();
}

it("adds, lists, shows the log of and removes a webhook; the secret is printed once", async () => {
  const add = await runCli(
    [
      "webhook",
      "add",
      "https://hooks.example.org/x",
      "--event",
      "job.completed",
      "--event",
      "job.failed",
      "--label",
      "team=ml",
    ],
    { env },
  );
  expect(add.code, add.stderr).toBe(0);
  const [id, secretLine] = add.stdout.split("\n");
  expect(id).toMatch(/^wh_/);
  expect(secretLine).toMatch(/^secret: whsec_/);
  const ls = await runCli(["webhook", "ls"], { env });
  expect(ls.code).toBe(0);
  expect(ls.stdout).toContain(id);
  expect(ls.stdout).toContain("job.completed,job.failed");
  expect(ls.stdout).not.toContain("whsec_");
  const json = await runCli(["webhook", "ls", "--json"], { env });
  expect(JSON.parse(json.stdout)[0]).toMatchObject({ id, scope: { label: { key: "team", value: "ml" } } });
  const log = await runCli(["webhook", "deliveries", id!], { env });
  expect(log.code, log.stderr).toBe(0);
  expect(log.stdout).toMatch(/^EVENT\s+JOB/);
  const rm = await runCli(["webhook", "rm", id!], { env });
  expect(rm.code).toBe(0);
  const gone = await runCli(["webhook", "rm", id!], { env });
  expect(gone.code).toBe(1);
  expect(oneLine(gone.stderr)).toContain("not found");
}, 60_000);

it("refuses bad input with one readable line and a non-zero exit", async () => {
  const cases: [string[], number, RegExp][] = [
    [["webhook", "add", "https://127.0.0.1/x", "--event", "job.completed"], 1, /loopback/],
    [["webhook", "add", "https://hooks.example.org/x", "--event", "job.exploded"], 1, /events/],
    [["webhook", "add", "https://hooks.example.org/x"], 2, /--event/],
    [["webhook", "add", "https://hooks.example.org/x", "--event", "job.failed", "--label", "nope"], 2, /KEY=VALUE/],
    [["webhook", "frobnicate"], 2, /unknown webhook command/],
    [["webhook", "deliveries", "wh_missing", "--limit", "x"], 2, /whole number/],
  ];
  for (const [args, code, message] of cases) {
    const run = await runCli(args, { env });
    expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(code);
    expect(oneLine(run.stderr)).toMatch(message);
  }
}, 60_000);
