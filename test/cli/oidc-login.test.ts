/**
 * `slurmgate login --oidc` end to end: the real CLI as a child process, a real OpenID Provider
 * (oidc-provider on loopback) whose browser step the test plays, and a real gateway process that
 * trusts it. Then whoami/ls with the stored sign-in, transparent refresh with rotated refresh tokens
 * (several CLI processes at once), and the worst cases: denied, expired code, provider down during a
 * refresh, a refresh token that is no longer good.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedWorld } from "../client/support/world.ts";
import { type GatewayProcess, ROOT, startGatewayProcess } from "../helpers/gateway-process.ts";
import { type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";
import { BIN, type Run, runCli } from "./support.ts";

let gw: GatewayProcess;
let userToken: string;
/** ID tokens good for an hour: commands use the stored one as is. */
let op: OidcTestProvider;
/** ID tokens good for 20 s, inside the CLI's 60 s margin: every command refreshes first. */
let shortOp: OidcTestProvider;
/** Device codes good for 3 s: shorter than the 5 s poll interval. */
let expiringOp: OidcTestProvider;

beforeAll(async () => {
  [op, shortOp, expiringOp] = await Promise.all([
    startOidcProvider(),
    startOidcProvider({ idTokenTtlSeconds: 20 }),
    startOidcProvider({ deviceCodeTtlSeconds: 3 }),
  ]);
  const issuers = [op, shortOp, expiringOp].map((p) => ({
    issuer: p.issuer,
    audience: "slurmgate",
    user: { claim: "preferred_username" },
  }));
  gw = await startGatewayProcess({ SLURMGATE_OIDC_ISSUERS: JSON.stringify(issuers) });
  userToken = (await seedWorld(gw.url, gw.adminToken, "alice")).userToken;
});
afterAll(async () => {
  await gw?.stop();
  await Promise.all([op, shortOp, expiringOp].map((p) => p?.close()));
});

const home = () => {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-oidc-"));
  return { XDG_CONFIG_HOME: dir, HOME: dir, path: join(dir, "slurmgate", "config.json") };
};

/**
 * Starts `slurmgate login --oidc` and resolves with the URL it asks the person to open, once that
 * line appears on stderr; `done` resolves when the CLI exits.
 */
function startLogin(issuer: string, env: Record<string, string>, extra: string[] = []) {
  const child = spawn(process.execPath, [BIN, "login", "--url", gw.url, "--oidc", issuer, ...extra], {
    cwd: ROOT,
    env: { ...process.env, SLURMGATE_URL: "", SLURMGATE_TOKEN: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const done = new Promise<Run>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  const prompt = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      const match = /^To sign in, open (\S+) and confirm the code (\S+) \(within \d+ min\)$/m.exec(stderr);
      if (match) {
        resolve(match[1] as string);
      }
    });
    child.on("close", () => reject(new Error(`login exited before prompting: ${stderr}`)));
  });
  return { prompt, done, child };
}

/** Signs alice in at `provider` through the CLI, playing her browser. */
async function login(provider: OidcTestProvider, env: Record<string, string>, extra: string[] = []) {
  const { prompt, done } = startLogin(provider.issuer, env, extra);
  await provider.playBrowser(await prompt, "alice");
  const run = await done;
  expect(run.stderr.trimEnd().split("\n")).toHaveLength(1); // only the prompt
  expect(run.code).toBe(0);
  return run;
}

/** A pid no process has: one that just exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(child.stdout.toString());
}

const stored = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const issuedAt = (jwt: string): number => JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()).iat;

/** Exactly one line on stderr, in the CLI's error format. */
function oneLine(run: Run): string {
  expect(run.code).toBe(1);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^slurmgate: /);
  return lines[0] as string;
}

describe("login --oidc (device flow) and the commands after it", () => {
  it("signs in through the browser step, stores the sign-in 0600, and whoami/ls use it", async () => {
    const env = home();
    const run = await login(op, env);
    expect(run.stdout).toBe(`logged in to ${gw.url} as alice (user) via ${op.issuer}; saved to ${env.path}\n`);
    expect(statSync(env.path).mode & 0o777).toBe(0o600);
    const config = stored(env.path);
    expect(config).toMatchObject({
      url: gw.url,
      oidc: { issuer: op.issuer, clientId: "slurmgate", subject: "alice", username: "alice" },
    });
    expect(config.token).toBeUndefined();
    expect(config.oidc.refreshToken).toEqual(expect.any(String));
    expect(Date.parse(config.oidc.expiresAt)).toBeGreaterThan(Date.now() + 50 * 60_000);

    const who = await runCli(["whoami"], { env });
    expect(who.code).toBe(0);
    expect(who.stdout).toContain(`alice (user) at ${gw.url}`);
    expect(who.stdout).toContain(`signed in at ${op.issuer} as alice, ID token good until ${config.oidc.expiresAt}`);
    const whoJson = await runCli(["whoami", "--json"], { env });
    expect(JSON.parse(whoJson.stdout)).toMatchObject({
      user: "alice",
      kind: "user",
      via: { kind: "oidc", issuer: op.issuer, subject: "alice" },
      credentials: { kind: "oidc", issuer: op.issuer, subject: "alice", refreshable: true },
    });

    // SLURMGATE_TOKEN still wins over the stored sign-in; whoami names it by its first characters only.
    const byToken = await runCli(["whoami"], { env: { ...env, SLURMGATE_TOKEN: userToken } });
    expect(byToken.stdout).toContain(`\n  token ${userToken.slice(0, 8)}… from SLURMGATE_TOKEN\n`);
    expect(byToken.stdout).not.toContain(userToken);

    const ls = await runCli(["ls", "--json"], { env });
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([]);
    // A token far from expiry is used as is: no refresh token spent.
    expect(stored(env.path)).toEqual(config);

    const out = await runCli(["logout"], { env });
    expect(out.code).toBe(0);
    expect(stored(env.path)).toEqual({ url: gw.url });
    expect(statSync(env.path).mode & 0o777).toBe(0o600);
    const after = await runCli(["ls"], { env });
    expect(oneLine(after)).toContain("not logged in");
  }, 120_000);

  it("refreshes an expiring ID token before a command, storing the rotated refresh token; CLIs at once do not collide", async () => {
    const env = home();
    // --json: the result on stdout as one object, the prompt still on stderr.
    const run = await login(shortOp, env, ["--json"]);
    expect(JSON.parse(run.stdout)).toEqual({
      url: gw.url,
      user: "alice",
      kind: "user",
      issuer: shortOp.issuer,
      path: env.path,
    });
    const first = stored(env.path).oidc;

    const ls = await runCli(["ls"], { env });
    expect(ls.code).toBe(0);
    const second = stored(env.path).oidc;
    // The refresh token is random and rotated on every use, so a new one proves the refresh ran. The
    // ID token may be byte-identical when both were issued in the same second (same iat and exp).
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(issuedAt(second.idToken)).toBeGreaterThanOrEqual(issuedAt(first.idToken));
    expect(statSync(env.path).mode & 0o777).toBe(0o600);

    // Four commands that all need a refresh, at the same moment. Presenting one rotated refresh
    // token twice would make the provider revoke the whole sign-in; under the lock each one
    // re-reads the file and spends only the newest.
    const runs = await Promise.all([1, 2, 3, 4].map(() => runCli(["whoami", "--json"], { env, timeoutMs: 60_000 })));
    for (const run of runs) {
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
    }
    const later = await runCli(["ls"], { env });
    expect(later.code).toBe(0);
    expect(statSync(env.path).mode & 0o777).toBe(0o600);
    expect(stored(env.path).oidc.refreshToken).not.toBe(second.refreshToken);
  }, 180_000);

  it("provider down during a refresh: one line, the stored sign-in untouched, and it works again once the provider is back", async () => {
    const env = home();
    await login(shortOp, env);
    const before = readFileSync(env.path, "utf8");
    await shortOp.stop();
    try {
      const run = await runCli(["ls"], { env });
      const line = oneLine(run);
      expect(line).toContain(`cannot refresh the sign-in at ${shortOp.issuer}`);
      expect(line).toContain("the stored sign-in is kept");
      expect(readFileSync(env.path, "utf8")).toBe(before);
    } finally {
      await shortOp.start();
    }
    // A lock left behind by a CLI killed mid-refresh (its pid is gone) does not block the next one.
    writeFileSync(`${env.path}.lock`, `${hostname()} ${deadPid()}\n`);
    const again = await runCli(["ls", "--json"], { env });
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(existsSync(`${env.path}.lock`)).toBe(false);
    expect(stored(env.path).oidc.refreshToken).not.toBe(JSON.parse(before).oidc.refreshToken);
  }, 120_000);

  it("a refresh token that is no longer good: one line saying to sign in again", async () => {
    const env = home();
    await login(shortOp, env);
    const { refreshToken } = stored(env.path).oidc;
    // Someone else spends it (as a thief would): the provider rotates it, and the CLI's copy is void.
    const stolen = await fetch(`${shortOp.issuer}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: "slurmgate" }),
    });
    expect(stolen.status).toBe(200);
    const before = readFileSync(env.path, "utf8");
    const line = oneLine(await runCli(["ls"], { env }));
    expect(line).toContain(`the sign-in at ${shortOp.issuer} can no longer be refreshed (invalid_grant`);
    expect(line).toMatch(new RegExp(`run slurmgate login --oidc ${shortOp.issuer} again$`));
    expect(line).not.toContain(refreshToken);
    expect(readFileSync(env.path, "utf8")).toBe(before);
  }, 120_000);

  it("a damaged sign-in in the login file: one line, no stack", async () => {
    const env = home();
    mkdirSync(join(env.path, ".."), { recursive: true });
    writeFileSync(env.path, JSON.stringify({ url: gw.url, oidc: { issuer: op.issuer, idToken: 7 } }), { mode: 0o600 });
    expect(oneLine(await runCli(["ls"], { env }))).toBe(
      `slurmgate: the sign-in stored in ${env.path} is damaged; run slurmgate login --oidc again`,
    );
    const out = await runCli(["logout"], { env });
    expect(out.code).toBe(0);
    expect(stored(env.path)).toEqual({});
  });

  it("the person denies: exit 1, one line, nothing stored", async () => {
    const env = home();
    const { prompt, done } = startLogin(op.issuer, env);
    const url = await prompt;
    // The confirmation page's "[ Abort ]" button: its form with abort=yes.
    const page = await fetch(url);
    const html = await page.text();
    const cookie = page.headers
      .getSetCookie()
      .map((c) => c.split(";")[0])
      .join("; ");
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
    const action = /<form[^>]*action="([^"]*)"/.exec(html)?.[1] ?? "/device";
    const abort = await fetch(new URL(action, url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie },
      body: new URLSearchParams({ xsrf: field("xsrf"), user_code: field("user_code"), abort: "yes" }),
    });
    await abort.arrayBuffer();
    const run = await done;
    expect(run.code).toBe(1);
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2); // the prompt, then the refusal
    expect(lines[1]).toBe(`slurmgate: sign-in refused at ${op.issuer} (access_denied: End-User aborted interaction)`);
    expect(() => statSync(env.path)).toThrow();
  }, 120_000);

  it("Ctrl-C while waiting for the person: exit 130, one line, nothing stored", async () => {
    const env = home();
    const { prompt, done, child } = startLogin(op.issuer, env);
    await prompt;
    child.kill("SIGINT");
    const run = await done;
    expect(run.code).toBe(130);
    expect(run.stderr.trimEnd().split("\n")[1]).toBe("slurmgate: sign-in interrupted; nothing was stored");
    expect(() => statSync(env.path)).toThrow();
  }, 60_000);

  it("the device code expires before anyone confirms: exit 1, one line", async () => {
    const env = home();
    const { prompt, done } = startLogin(expiringOp.issuer, env);
    await prompt;
    const run = await done;
    expect(run.code).toBe(1);
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe(
      "slurmgate: the sign-in code expired before it was confirmed; run slurmgate login --oidc again",
    );
    expect(() => statSync(env.path)).toThrow();
  }, 120_000);
});
