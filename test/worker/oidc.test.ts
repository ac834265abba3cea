/**
 * The core OIDC checks against the Worker build in real workerd: it fetches the provider's keys over
 * loopback with the same Web-API-only code the Node gateway runs.
 */
import { importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newSigningKey, type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";
import { startWorkerTarget, type WorkerTarget } from "../helpers/worker-target.ts";

describe("OIDC bearer tokens at the Worker in workerd", () => {
  let op: OidcTestProvider;
  let target: WorkerTarget;

  beforeAll(async () => {
    op = await startOidcProvider();
    target = await startWorkerTarget({
      vars: {
        SLURMGATE_OIDC_ISSUERS: JSON.stringify([{ issuer: op.issuer, audience: "slurmgate", user: {} }]),
      },
    });
    const res = await fetch(`${target.baseUrl}/v1/admin/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${target.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "alice" }),
    });
    expect(res.status, await res.text()).toBeLessThan(300);
  });
  afterAll(async () => {
    await target?.close();
    await op?.close();
  });

  const me = async (token: string) => {
    const res = await fetch(`${target.baseUrl}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
  };

  it("accepts the provider's ID token", async () => {
    const res = await me(await op.issueIdToken({ preferred_username: "alice" }));
    expect(res.status, `${res.text}\n${target.output()}`).toBe(200);
    // The same claims and key, only the audience differs (so the refusal below is about the audience).
    expect((await me(await op.sign({ sub: "alice", preferred_username: "alice" }))).status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ user: "alice", via: { kind: "oidc", issuer: op.issuer } });
  });

  it("refuses a token for another audience", async () => {
    const token = await op.sign({ sub: "alice", preferred_username: "alice", aud: "someone-else" });
    const res = await me(token);
    expect(res.status).toBe(401);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(res.text).detail).toMatch(/audience/);
    expect(res.text).not.toContain(token.split(".")[2]);
  });

  it("refuses a token signed with a key the provider does not publish", async () => {
    const stranger = await newSigningKey();
    const token = await new SignJWT({ preferred_username: "alice" })
      .setProtectedHeader({ alg: "RS256", kid: stranger.kid as string })
      .setIssuer(op.issuer)
      .setSubject("alice")
      .setAudience("slurmgate")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(await importJWK(stranger, "RS256"));
    const res = await me(token);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text).detail).toMatch(/unknown kid/);
  });

  it("keeps admitting tokens of cached keys while the provider is down", async () => {
    expect((await me(await op.issueIdToken({ preferred_username: "alice" }))).status).toBe(200);
    const another = await op.sign({ sub: "alice-laptop", preferred_username: "alice" });
    await op.stop();
    try {
      const res = await me(another);
      expect(res.status, res.text).toBe(200);
    } finally {
      await op.start();
    }
  });
});
