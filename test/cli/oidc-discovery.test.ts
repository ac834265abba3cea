/**
 * `slurmgate login --oidc` against hostile or broken providers (small real HTTP servers on
 * loopback, the real CLI as a child process): every refusal is one line naming the reason, exit 1,
 * nothing is stored, and no credential is posted to an endpoint the issuer does not own.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./support.ts";

type Hit = { method: string; url: string };

/** A server answering `discovery(origin)` at the well-known path, and recording every request. */
async function serve(
  discovery: (origin: string) => unknown,
  raw?: string,
): Promise<{ origin: string; hits: Hit[]; server: Server }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    hits.push({ method: req.method ?? "", url: req.url ?? "" });
    req.resume();
    if (req.url === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(raw ?? JSON.stringify(discovery(origin)));
      return;
    }
    if (req.url === "/token") {
      // A provider that has forgotten the device code (as some do once it expires).
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "invalid_grant", error_description: "device code not found" }));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ device_code: "dc", user_code: "ABCD", verification_uri: `${origin}/device` }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, hits, server };
}

const servers: Server[] = [];
let elsewhere: { origin: string; hits: Hit[] };
beforeAll(async () => {
  const s = await serve(() => ({}));
  servers.push(s.server);
  elsewhere = s;
});
afterAll(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** Runs login --oidc against `issuer`; resolves with its last stderr line, after `lines` lines in all. */
async function loginAgainst(issuer: string, lines = 1) {
  const home = mkdtempSync(join(tmpdir(), "slurmgate-oidc-hostile-"));
  const run = await runCli(["login", "--url", "http://127.0.0.1:9", "--oidc", issuer], {
    env: { XDG_CONFIG_HOME: home, HOME: home },
  });
  expect(run.code).toBe(1);
  expect(run.stdout).toBe("");
  const printed = run.stderr.trimEnd().split("\n");
  expect(printed).toHaveLength(lines);
  expect(existsSync(join(home, "slurmgate", "config.json"))).toBe(false);
  return printed[lines - 1] as string;
}

const good = (origin: string) => ({
  issuer: origin,
  token_endpoint: `${origin}/token`,
  device_authorization_endpoint: `${origin}/device/auth`,
});

describe("login --oidc refuses a provider it should not trust", () => {
  it("a plain-http issuer on another machine, before any request", async () => {
    const line = await loginAgainst("http://idp.example.org/realms/hpc");
    expect(line).toMatch(
      /^slurmgate: refusing to sign in at http:\/\/idp\.example\.org\/realms\/hpc: the issuer URL is not https/,
    );
  });

  it("a plain-http token endpoint on a non-loopback host", async () => {
    const s = await serve((o) => ({ ...good(o), token_endpoint: "http://idp.example.org/token" }));
    servers.push(s.server);
    const line = await loginAgainst(s.origin);
    expect(line).toContain("token_endpoint http://idp.example.org/token is not https");
    expect(s.hits.map((h) => h.url)).toEqual(["/.well-known/openid-configuration"]);
  });

  it("a device endpoint on another origin, and posts nothing there", async () => {
    const s = await serve((o) => ({ ...good(o), device_authorization_endpoint: `${elsewhere.origin}/device/auth` }));
    servers.push(s.server);
    const line = await loginAgainst(s.origin);
    expect(line).toContain(`device_authorization_endpoint ${elsewhere.origin}/device/auth is on another origin`);
    expect(elsewhere.hits).toEqual([]);
    expect(s.hits.map((h) => h.url)).toEqual(["/.well-known/openid-configuration"]);
  });

  it("an https endpoint on another origin", async () => {
    const s = await serve((o) => ({ ...good(o), token_endpoint: "https://tokens.example.net/token" }));
    servers.push(s.server);
    expect(await loginAgainst(s.origin)).toContain(
      "token_endpoint https://tokens.example.net/token is on another origin",
    );
  });

  it("a discovery document that names another issuer (mix-up)", async () => {
    const s = await serve((o) => ({ ...good(o), issuer: "https://idp.example.org" }));
    servers.push(s.server);
    expect(await loginAgainst(s.origin)).toContain("names another issuer (https://idp.example.org)");
  });

  it("a provider without the device flow, a document that is not JSON, and an oversized one", async () => {
    const none = await serve((o) => ({ issuer: o, token_endpoint: `${o}/token` }));
    const html = await serve(() => ({}), "<html>login</html>");
    const huge = await serve(() => ({}), `{"issuer":"${"x".repeat(400_000)}"}`);
    servers.push(none.server, html.server, huge.server);
    expect(await loginAgainst(none.origin)).toContain("does not offer the device flow");
    expect(await loginAgainst(html.origin)).toContain("without a JSON object");
    expect(await loginAgainst(huge.origin)).toContain("larger than 262144 bytes");
  });

  it("a provider that forgets the device code while the CLI polls: one line saying to start again", async () => {
    const s = await serve(good);
    servers.push(s.server);
    const line = await loginAgainst(s.origin, 2);
    expect(line).toBe(
      `slurmgate: the sign-in code is no longer valid at ${s.origin} (invalid_grant: device code not found); run slurmgate login --oidc again`,
    );
    expect(s.hits.map((h) => `${h.method} ${h.url}`)).toEqual([
      "GET /.well-known/openid-configuration",
      "POST /device/auth",
      "POST /token",
    ]);
  });

  it("a control character in a hostile endpoint never reaches the terminal", async () => {
    const s = await serve((o) => ({ ...good(o), token_endpoint: "http://evil.example.org/\u001b[2Jtoken" }));
    servers.push(s.server);
    expect(await loginAgainst(s.origin)).not.toContain("\u001b");
  });
});
