/**
 * Runs test/deno/client.deno.ts under real Deno (the `deno` npm package) against a real gateway:
 * proof that the client runs unchanged outside Node. Offline by construction: --cached-only, the
 * local node_modules, an unreachable npm registry, and network permission for 127.0.0.1 only.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type GatewayProcess, ROOT, startGatewayProcess } from "../helpers/gateway-process.ts";
import { seedWorld, type World } from "./support/world.ts";

const DENO = join(ROOT, "node_modules/.bin/deno");

let gw: GatewayProcess;
let world: World;
beforeAll(async () => {
  gw = await startGatewayProcess();
  world = await seedWorld(gw.url, gw.adminToken);
});
afterAll(async () => {
  await gw?.stop();
});

it.runIf(existsSync(DENO))("the client passes its tests under Deno, type-checked and offline", () => {
  const run = spawnSync(
    DENO,
    [
      "test",
      "--cached-only",
      "--node-modules-dir=manual",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      "--allow-env=SG_URL,SG_USER_TOKEN,SG_AGENT_TOKEN",
      "test/deno/client.deno.ts",
    ],
    {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DENO_DIR: process.env.DENO_DIR,
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        SG_URL: gw.url,
        SG_USER_TOKEN: world.userToken,
        SG_AGENT_TOKEN: world.agentToken,
      } as NodeJS.ProcessEnv,
    },
  );
  const output = `${run.stdout}\n${run.stderr}`;
  expect(run.status, output).toBe(0);
  expect(output).toMatch(/ok \| 4 passed \| 0 failed/);
  expect(output).toMatch(/Check .*client\.deno\.ts/);
});
