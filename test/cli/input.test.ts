/**
 * `slurmgate submit --input LOCAL[:PATH]` against a real gateway process: the file is uploaded to
 * the gateway's file store (beside its database) and named in the job's inputs.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type World, seedWorld } from "../client/support/world.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { runCli } from "./support.ts";

let gw: GatewayProcess;
let world: World;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  gw = await startGatewayProcess();
  world = await seedWorld(gw.url, gw.adminToken);
  dir = mkdtempSync(join(tmpdir(), "slurmgate-input-cli-"));
  env = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: dir, HOME: dir };
});
afterAll(async () => {
  await gw?.stop();
});

it("uploads each --input and submits the job naming them", async () => {
  writeFileSync(join(dir, "train.csv"), "a,b\n1,2\n");
  writeFileSync(join(dir, "cfg.json"), "{}");
  const run = await runCli(
    [
      "submit",
      "-q",
      "--input",
      `${join(dir, "train.csv")}:data/train.csv`,
      "--input",
      join(dir, "cfg.json"),
      "--",
      "true",
    ],
    { env },
  );
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  const job = await world.user.get(run.stdout.trim());
  const hex = createHash("sha256").update("a,b\n1,2\n").digest("hex");
  expect((job as unknown as { spec: { inputs: unknown } }).spec.inputs).toEqual([
    { file: `sha256:${hex}`, path: "data/train.csv" },
    { file: `sha256:${createHash("sha256").update("{}").digest("hex")}`, path: "cfg.json" },
  ]);
  // The default store is files/ beside the gateway's database file.
  expect(existsSync(join(gw.dir, "files", hex.slice(0, 2), hex.slice(2, 4), hex))).toBe(true);
});

it("says in one line what is wrong with an --input, and exits non-zero", async () => {
  const missing = await runCli(["submit", "--input", join(dir, "nope.csv"), "--", "true"], { env });
  expect(missing.code).toBe(1);
  expect(missing.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(missing.stderr).toContain("nope.csv");
  const bad = await runCli(["submit", "--input", "x.csv:", "--", "true"], { env });
  expect(bad.code).toBe(2);
  writeFileSync(join(dir, "x.csv"), "x");
  const hostile = await runCli(["submit", "--input", `${join(dir, "x.csv")}:../x.csv`, "--", "true"], { env });
  expect(hostile.code).toBe(1);
  expect(hostile.stderr).toContain("inputs.0.path");
});
