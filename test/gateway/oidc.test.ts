/**
 * OpenID Connect bearer tokens at the gateway, against a real OpenID Provider (oidc-provider on
 * loopback) and tokens forged with jose for every way a token can be wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";
import { expectProblemShape } from "./world.ts";

type Res = { status: number; headers: Headers; body: Record<string, unknown>; text: string };

async function call(gw: TestGateway, path: string, token: string): Promise<Res> {
  const res = await gw.request("GET", path, { token });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {}, text };
}

/** A 401 problem naming `reason`, which never carries the token (nor its signature or payload). */
function expectRefused(res: Res, token: string, reason: RegExp, status = 401) {
  const body = expectProblemShape(res, status);
  expect(body.field).toBe("header.authorization");
  expect(String((body as { detail?: string }).detail)).toMatch(reason);
  for (const part of token.split(".").filter((p) => p.length > 8)) {
    expect(res.text).not.toContain(part);
  }
}

async function gatewayFor(issuers: unknown[]) {
  const gw = await createTestGateway({ SLURMGATE_OIDC_ISSUERS: JSON.stringify(issuers) });
  await gw.user("alice");
  return gw;
}

describe("OIDC bearer tokens from a real provider", () => {
  let op: OidcTestProvider;
  let gw: TestGateway;

  beforeAll(async () => {
    op = await startOidcProvider();
    gw = await gatewayFor([{ issuer: op.issuer, audience: "slurmgate", user: { claim: "preferred_username" } }]);
  });
  afterAll(() => op.close());

  it("admit an ID token of the provider as the user it names, beside opaque tokens", async () => {
    const token = await op.issueIdToken({ preferred_username: "alice" });
    const me = await call(gw, "/v1/me", token);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ user: "alice", kind: "user" });
    expect((await call(gw, "/v1/jobs", token)).status).toBe(200);

    const opaque = await gw.user("bob");
    expect((await call(gw, "/v1/me", opaque)).body).toMatchObject({ user: "bob" });
  });

  it("admit the ID token a device-flow sign-in yields", async () => {
    const { id_token } = await op.deviceLogin("alice");
    expect((await call(gw, "/v1/jobs", id_token)).status).toBe(200);
  });

  it("refuse a verified token whose user does not exist, as forbidden", async () => {
    const token = await op.issueIdToken({ preferred_username: "mallory" });
    expectRefused(await call(gw, "/v1/me", token), token, /no slurmgate user/, 403);
  });
});
