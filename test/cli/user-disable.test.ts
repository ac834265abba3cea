/**
 * `slurmgate user disable/enable` through the real binary against a real gateway process: the
 * user's token stops working with one readable line, an admin stays an admin, and enabling restores it.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { runCli } from "./support.ts";

let gw: GatewayProcess;
let admin: Record<string, string>;

beforeAll(async () => {
  gw = await startGatewayProcess();
  const home = mkdtempSync(join(tmpdir(), "slurmgate-disable-"));
  admin = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: gw.adminToken, XDG_CONFIG_HOME: home };
});
afterAll(async () => {
  await gw?.stop();
});

describe("user disable / enable", () => {
  it("cuts a user's token off with one line, and enabling restores it", async () => {
    await runCli(["user", "add", "zoe"], { env: admin });
    const token = (await runCli(["token", "create", "--user", "zoe"], { env: admin })).stdout.trim();
    const zoe = { ...admin, SLURMGATE_TOKEN: token };
    expect((await runCli(["whoami"], { env: zoe })).code).toBe(0);

    const off = await runCli(["user", "disable", "zoe"], { env: admin });
    expect([off.code, off.stdout]).toEqual([0, "user zoe (disabled) saved\n"]);
    const refused = await runCli(["whoami"], { env: zoe });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^slurmgate: header.authorization: user zoe is disabled.*\(403 forbidden\)\n$/);
    const listed = (await runCli(["user", "list"], { env: admin })).stdout;
    expect(listed).toMatch(/^NAME\s+ADMIN\s+DISABLED$/m);
    expect(listed).toMatch(/^zoe\s+no\s+yes$/m);

    const on = await runCli(["user", "enable", "zoe", "--json"], { env: admin });
    expect(JSON.parse(on.stdout)).toEqual({ name: "zoe", admin: false, disabled: false });
    expect((await runCli(["whoami"], { env: zoe })).code).toBe(0);
  });

  it("keeps an admin an admin when disabling them, and refuses unknown or missing names", async () => {
    await runCli(["user", "add", "ops", "--admin"], { env: admin });
    const off = await runCli(["user", "disable", "ops", "--json"], { env: admin });
    expect(JSON.parse(off.stdout)).toEqual({ name: "ops", admin: true, disabled: true });

    const unknown = await runCli(["user", "disable", "nobody"], { env: admin });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('slurmgate: no user "nobody"; see slurmgate user list\n');
    expect((await runCli(["user", "disable"], { env: admin })).code).toBe(2);
    expect((await runCli(["user", "disable", "a", "b"], { env: admin })).code).toBe(2);
  });
});
