/**
 * The real `slurmgate` binary's operator verbs (user, cluster, token, gateway, agent) and the
 * `--help` of every verb.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  freePort,
  type GatewayProcess,
  newAdminToken,
  ROOT,
  startGatewayProcess,
  stopChild,
} from "../helpers/gateway-process.ts";
import { BIN, runCli } from "./support.ts";

let gw: GatewayProcess;
let admin: Record<string, string>;

beforeAll(async () => {
  gw = await startGatewayProcess();
  const home = mkdtempSync(join(tmpdir(), "slurmgate-ops-"));
  admin = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: gw.adminToken, XDG_CONFIG_HOME: home };
});
afterAll(async () => {
  await gw?.stop();
});

describe("user, cluster, token", () => {
  it("sets up a user end to end and the new token works", async () => {
    expect((await runCli(["user", "add", "bob"], { env: admin })).stdout).toBe("user bob saved\n");
    const users = JSON.parse((await runCli(["user", "list", "--json"], { env: admin })).stdout);
    expect(users.map((u: { name: string }) => u.name)).toEqual(expect.arrayContaining(["admin", "bob"]));

    const added = await runCli(["cluster", "add", "hpc2", "--root", "/scratch", "--description", "second"], {
      env: admin,
    });
    expect(added.code).toBe(0);
    expect(added.stdout).toBe("cluster hpc2 saved (roots /scratch)\n");
    const clusters = JSON.parse((await runCli(["cluster", "list", "--json"], { env: admin })).stdout);
    expect(clusters).toEqual([
      expect.objectContaining({ name: "hpc2", sharedRoots: ["/scratch"], description: "second" }),
    ]);

    const grant = await runCli(["cluster", "grant", "bob", "hpc2", "--partition", "cpu", "--json"], { env: admin });
    expect(JSON.parse(grant.stdout)).toEqual({ user: "bob", cluster: "hpc2", partitions: ["cpu"] });

    const created = await runCli(["token", "create", "--user", "bob", "--label", "laptop"], { env: admin });
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^sgu_\S+\n$/);
    expect(created.stderr).toMatch(/^created user token \S+ for bob; it is shown only this once\n$/);
    const bobToken = created.stdout.trim();
    const bob = { ...admin, SLURMGATE_TOKEN: bobToken };
    expect((await runCli(["whoami"], { env: bob })).stdout).toMatch(/^bob \(user\)/);

    const agentToken = await runCli(["token", "create", "--cluster", "hpc2", "--json"], { env: admin });
    expect(JSON.parse(agentToken.stdout)).toMatchObject({ kind: "agent", cluster: "hpc2", token: expect.any(String) });

    const tokens = JSON.parse((await runCli(["token", "list", "--user", "bob", "--json"], { env: admin })).stdout);
    expect(tokens).toHaveLength(1);
    const revoked = await runCli(["token", "revoke", tokens[0].id], { env: admin });
    expect(revoked.stdout).toBe(`revoked ${tokens[0].id}\n`);
    const refused = await runCli(["whoami"], { env: bob });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^slurmgate: .*\(401 unauthorized\)\n$/);

    const forbidden = await runCli(["user", "add", "eve"], {
      env: { ...admin, SLURMGATE_TOKEN: agentTokenOf(agentToken.stdout) },
    });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/\(403 forbidden\)\n$/);

    const ungrant = await runCli(["cluster", "ungrant", "bob", "hpc2"], { env: admin });
    expect(ungrant.stdout).toBe("bob may no longer use hpc2\n");
  });

  it("grants Slurm accounts with a default, and refuses a default not among them in one line", async () => {
    await runCli(["user", "add", "dora"], { env: admin });
    await runCli(["cluster", "add", "hpc4", "--root", "/scratch"], { env: admin });
    const args = ["cluster", "grant", "dora", "hpc4", "--account", "lab-a", "--account", "lab-b"];
    const granted = await runCli([...args, "--default-account", "lab-b"], { env: admin });
    expect(granted.code).toBe(0);
    expect(granted.stdout).toBe("dora may use hpc4 (partitions: *; accounts: lab-a, lab-b, default lab-b)\n");
    const json = await runCli([...args, "--json"], { env: admin });
    expect(JSON.parse(json.stdout)).toEqual({
      user: "dora",
      cluster: "hpc4",
      partitions: ["*"],
      accounts: ["lab-a", "lab-b"],
    });
    const bad = await runCli([...args, "--default-account", "lab-z"], { env: admin });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^slurmgate: .*defaultAccount.*\n$/);
    expect(bad.stderr.split("\n").filter(Boolean)).toHaveLength(1);
  });

  it("creates personal agent tokens: a user's own, and another user's only as an admin", async () => {
    await runCli(["user", "add", "carol"], { env: admin });
    await runCli(["user", "add", "dave"], { env: admin });
    await runCli(["cluster", "add", "hpc3", "--root", "/scratch"], { env: admin });
    await runCli(["cluster", "grant", "carol", "hpc3"], { env: admin });
    const carol = {
      ...admin,
      SLURMGATE_TOKEN: (await runCli(["token", "create", "--user", "carol"], { env: admin })).stdout.trim(),
    };
    const dave = {
      ...admin,
      SLURMGATE_TOKEN: (await runCli(["token", "create", "--user", "dave"], { env: admin })).stdout.trim(),
    };

    const own = await runCli(["token", "create", "--agent", "--cluster", "hpc3", "--label", "login1"], { env: carol });
    expect(own.code).toBe(0);
    expect(own.stdout).toMatch(/^sga_\S+\n$/);
    expect(own.stderr).toMatch(
      /^created agent token \S+ for carol's personal agent on hpc3; it is shown only this once\n$/,
    );
    const me = await fetch(`${gw.url}/v1/me`, { headers: { authorization: `Bearer ${own.stdout.trim()}` } });
    expect(await me.json()).toMatchObject({ kind: "agent", user: "carol", cluster: "hpc3" });

    const forOther = await runCli(["token", "create", "--agent", "--cluster", "hpc3", "--user", "carol"], {
      env: dave,
    });
    expect(forOther.code).toBe(1);
    expect(forOther.stderr).toMatch(/\(403 forbidden\)\n$/);
    const notGranted = await runCli(["token", "create", "--agent", "--cluster", "hpc3"], { env: dave });
    expect(notGranted.code).toBe(1);
    expect(notGranted.stderr).toMatch(/^slurmgate: .*hpc3.*\(403 forbidden\)\n$/);
    const byAdmin = await runCli(["token", "create", "--agent", "--cluster", "hpc3", "--user", "dave", "--json"], {
      env: admin,
    });
    expect(JSON.parse(byAdmin.stdout)).toMatchObject({ kind: "agent", user: "dave", cluster: "hpc3" });
    const noCluster = await runCli(["token", "create", "--agent"], { env: carol });
    expect(noCluster.code).toBe(2);
    expect(noCluster.stderr).toContain("--agent needs --cluster");
  });

  it("names the field the gateway refused, and usage errors exit 2", async () => {
    const bad = await runCli(["user", "add", "Not A Name"], { env: admin });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^slurmgate: name: .*\(422 validation_failed\)\n$/);
    for (const args of [["token"], ["token", "explode"], ["cluster", "add", "x"], ["user", "add"]]) {
      const run = await runCli(args, { env: admin });
      expect(run.code, args.join(" ")).toBe(2);
    }
  });
});

describe("help", () => {
  it.each([
    "login",
    "submit",
    "ls",
    "show",
    "logs",
    "cancel",
    "wait",
    "clusters",
    "whoami",
    "gateway",
    "token",
    "user",
    "cluster",
  ])("%s --help shows usage and examples", async (verb) => {
    const run = await runCli([verb, "--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: slurmgate ${verb}`));
    expect(run.stdout).toContain("Examples:");
    expect(run.stderr).toBe("");
  });

  it("the top-level help lists every verb and the exit codes", async () => {
    const run = await runCli(["--help"]);
    expect(run.code).toBe(0);
    for (const verb of [
      "login",
      "submit",
      "ls",
      "show",
      "logs",
      "cancel",
      "wait",
      "clusters",
      "gateway",
      "agent",
      "token",
      "user",
      "cluster",
    ]) {
      expect(run.stdout).toContain(`  ${verb} `);
    }
    expect(run.stdout).toContain("Exit codes:");
    expect((await runCli([])).code).toBe(2);
  });
});

describe("gateway and agent", () => {
  it("`slurmgate gateway` serves the API and stops on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-gw-"));
    const port = await freePort();
    const token = newAdminToken();
    const child = spawn(process.execPath, [BIN, "gateway"], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        SLURMGATE_DB_URL: `file:${join(dir, "db")}`,
        SLURMGATE_BOOTSTRAP_TOKEN: token,
        SLURMGATE_LOG_LEVEL: "warn",
      },
      stdio: "ignore",
    });
    try {
      let me: Response | undefined;
      for (let i = 0; i < 100 && !me; i++) {
        me = await fetch(`http://127.0.0.1:${port}/v1/me`, { headers: { authorization: `Bearer ${token}` } }).catch(
          () => undefined,
        );
        if (!me) {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(await me?.json()).toMatchObject({ kind: "admin", user: "admin" });
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      await stopChild(child);
    }
  });

  it("`slurmgate agent` hands its arguments to the agent and reports its failure on stderr", async () => {
    const run = await runCli(["agent"], {
      env: { HOME: mkdtempSync(join(tmpdir(), "slurmgate-agent-")) },
      timeoutMs: 15_000,
    });
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().length).toBeGreaterThan(0);
  });
});

function agentTokenOf(json: string): string {
  return (JSON.parse(json) as { token: string }).token;
}
