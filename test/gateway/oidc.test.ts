/**
 * OpenID Connect bearer tokens at the gateway, against a real OpenID Provider (oidc-provider on
 * loopback) and tokens forged with jose for every way a token can be wrong.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, importJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JWKS_FETCH_TIMEOUT_MS, JWKS_MAX_AGE_MS, JWKS_MAX_BYTES } from "../../gateway/auth/jwks-cache.ts";
import { createTestGateway, type TestGateway, testClock } from "../helpers/gateway.ts";
import { newSigningKey, type OidcTestProvider, startOidcProvider } from "../helpers/oidc-provider.ts";
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
    expect(me.body).toMatchObject({
      user: "alice",
      kind: "user",
      via: { kind: "oidc", issuer: op.issuer, subject: "alice" },
    });
    expect((await call(gw, "/v1/jobs", token)).status).toBe(200);

    const opaque = await gw.user("bob");
    expect((await call(gw, "/v1/me", opaque)).body).toMatchObject({ user: "bob", via: { kind: "token" } });
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

describe("key rotation at the provider while the gateway runs", () => {
  it("fetches a new kid once, and tokens of the old key keep verifying", async () => {
    const op = await startOidcProvider();
    try {
      const clock = testClock(Date.now());
      const gw = await createTestGateway(
        { SLURMGATE_OIDC_ISSUERS: JSON.stringify([{ issuer: op.issuer, audience: "slurmgate", user: {} }]) },
        { clock },
      );
      await gw.user("alice");
      const jwksFetches = () => op.requests.filter((r) => r === "GET /jwks").length;
      const old = await op.issueIdToken({ preferred_username: "alice" });
      expect((await call(gw, "/v1/jobs", old)).status).toBe(200);
      expect(jwksFetches()).toBe(1);

      const newKid = await op.rotateKeys();
      const fresh = [
        await op.issueIdToken({ preferred_username: "alice" }),
        await op.issueIdToken({ preferred_username: "alice", sub: "alice-2" }),
      ];
      const statuses = await Promise.all(fresh.map(async (t) => (await call(gw, "/v1/jobs", t)).status));
      expect(statuses).toEqual([200, 200]);
      expect(JSON.parse(Buffer.from(fresh[0]!.split(".")[0]!, "base64url").toString()).kid).toBe(newKid);
      expect(jwksFetches()).toBe(2);
      // Past the auth cache: the old token is verified again, with the old key still cached.
      clock.advance(2_100);
      expect((await call(gw, "/v1/jobs", old)).status).toBe(200);
      expect(jwksFetches()).toBe(2);

      // A sign-in from before the next rotation refreshes into a token of the new key, which is
      // admitted once the unknown-kid refetch is allowed again.
      const { refresh_token } = await op.deviceLogin("alice");
      await op.rotateKeys();
      clock.advance(30_000);
      const refreshed = await fetch(`${op.issuer}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          client_id: op.clientId,
          refresh_token: refresh_token ?? "",
        }),
      });
      const { id_token } = (await refreshed.json()) as { id_token: string };
      expect(JSON.parse(Buffer.from(id_token.split(".")[0]!, "base64url").toString()).kid).toBe(op.kid);
      expect((await call(gw, "/v1/jobs", id_token)).status).toBe(200);
      expect(jwksFetches()).toBe(3);
    } finally {
      await op.close();
    }
  });
});

/** An issuer under the test's control: its own key, and a JWKS endpoint that can misbehave. */
async function forgeIssuer() {
  const key = await newSigningKey();
  const publicJwk = (k: JWK): JWK => {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = k;
    return pub;
  };
  const state = {
    keys: [key],
    mode: "ok" as "ok" | "huge" | "slow" | "error" | "wrong-issuer" | "slow-discovery",
    hits: [] as string[],
  };
  const open = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.hits.push(req.url ?? "");
    open.add(res);
    res.on("close", () => open.delete(res));
    if (req.url === "/.well-known/openid-configuration" && state.mode === "slow-discovery") {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("{");
      return; // and never finishes
    }
    if (req.url === "/.well-known/openid-configuration") {
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          issuer: state.mode === "wrong-issuer" ? "https://elsewhere" : issuer,
          jwks_uri: `${issuer}/jwks`,
        }),
      );
      return;
    }
    if (state.mode === "error") {
      res.writeHead(500).end();
      return;
    }
    if (state.mode === "huge") {
      // Lies about its size: only the bytes read may count.
      res.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      res.end(`{"keys":[],"pad":"${"x".repeat(JWKS_MAX_BYTES + 10)}"}`);
      return;
    }
    if (state.mode === "slow") {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"keys":[');
      const timer = setInterval(() => res.write(" "), 200);
      res.on("close", () => clearInterval(timer));
      return;
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: state.keys.map(publicJwk) }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    state,
    key,
    async sign(claims: JWTPayload, opts: { key?: JWK; alg?: string; kid?: string; now: number }) {
      const k = opts.key ?? key;
      const t = Math.floor(opts.now / 1000);
      // Claims go in as given (hostile types too); only missing ones get defaults.
      return new SignJWT({
        preferred_username: "alice",
        iss: issuer,
        sub: "alice",
        aud: "slurmgate",
        iat: t,
        exp: t + 300,
        ...claims,
      })
        .setProtectedHeader({ alg: opts.alg ?? "RS256", kid: opts.kid ?? k.kid })
        .sign(await importJWK(k, opts.alg ?? "RS256"));
    },
    close() {
      for (const res of open) {
        res.destroy();
      }
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe("every way a token can be wrong is a 401 that does not echo it", () => {
  let idp: Awaited<ReturnType<typeof forgeIssuer>>;
  const clock = testClock(Date.now());
  let gw: TestGateway;

  beforeAll(async () => {
    idp = await forgeIssuer();
    gw = await createTestGateway(
      {
        SLURMGATE_OIDC_ISSUERS: JSON.stringify([
          { issuer: idp.issuer, audience: "slurmgate", user: {}, requiredClaims: { email_verified: "true" } },
          { issuer: "https://other.example.org", audience: "slurmgate", user: {}, jwksUri: `${idp.issuer}/other-jwks` },
        ]),
      },
      { clock },
    );
    await gw.user("alice");
  });
  afterAll(() => idp.close());

  const sign = (claims: JWTPayload, opts: { key?: JWK; alg?: string; kid?: string } = {}) =>
    idp.sign({ email_verified: "true", ...claims }, { ...opts, now: clock.now() });
  const s = (ms: number) => Math.floor((clock.now() + ms) / 1000);

  it("accepts a good token, and clock skew within 60 s either way", async () => {
    expect((await call(gw, "/v1/me", await sign({}))).status).toBe(200);
    expect((await call(gw, "/v1/me", await sign({ nbf: s(45_000) }))).status).toBe(200);
    expect((await call(gw, "/v1/me", await sign({ exp: s(-45_000) }))).status).toBe(200);
  });

  it("refuses expired, not-yet-valid (beyond 60 s), wrong audience and missing claims", async () => {
    const cases: [JWTPayload, RegExp][] = [
      [{ exp: s(-90_000) }, /expired/],
      [{ nbf: s(90_000) }, /not yet valid/],
      [{ aud: "someone-else" }, /audience/],
      [{ email_verified: "false" }, /claim 'email_verified'/],
      // Hostile claim types: a time that is not a number, an issuer that is not a string.
      [{ exp: "never" as unknown as number }, /claim 'exp'/],
      [{ nbf: "soon" as unknown as number }, /claim 'nbf'/],
      [{ iss: { url: "x" } as unknown as string }, /names no issuer/],
      [{ aud: ["someone-else", "another"] }, /audience/],
    ];
    for (const [claims, reason] of cases) {
      const token = await sign(claims);
      expectRefused(await call(gw, "/v1/jobs", token), token, reason);
    }
  });

  it("refuses an untrusted issuer, and a token claiming one issuer signed with another's key", async () => {
    const untrusted = await sign({ iss: "https://evil.example.org" });
    expectRefused(await call(gw, "/v1/jobs", untrusted), untrusted, /issuer is not trusted/);
    // Claims the second issuer; its keys are not the forge's signing key.
    idp.state.keys = [await newSigningKey()];
    const confused = await sign({ iss: "https://other.example.org" });
    expectRefused(await call(gw, "/v1/jobs", confused), confused, /unknown kid/);
    idp.state.keys = [idp.key];
  });

  it("refuses alg none and HS256 signed with the RSA public key (algorithm confusion)", async () => {
    const t = s(0);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const claims = {
      iss: idp.issuer,
      sub: "alice",
      aud: "slurmgate",
      iat: t,
      exp: t + 300,
      preferred_username: "alice",
      email_verified: "true",
    };
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
    expectRefused(await call(gw, "/v1/jobs", none), none, /algorithm 'none' not allowed/);

    const pub = await importJWK(
      { ...idp.key, d: undefined, p: undefined, q: undefined, dp: undefined, dq: undefined, qi: undefined },
      "RS256",
    );
    for (const secret of [await exportSPKI(pub as CryptoKey), JSON.stringify(await exportJWK(pub as CryptoKey))]) {
      const hs = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", kid: idp.key.kid })
        .sign(new TextEncoder().encode(secret));
      expectRefused(await call(gw, "/v1/jobs", hs), hs, /algorithm 'HS256' not allowed/);
    }
  });

  it("refuses malformed JWTs and tokens without sub", async () => {
    expectRefused(await call(gw, "/v1/jobs", "eyJhbGciOi.eyJzdWIi.c2ln"), "eyJhbGciOi.eyJzdWIi.c2ln", /malformed/);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const notJson = `${b64({ alg: "RS256" })}.${Buffer.from("not json").toString("base64url")}.AAAA`;
    expectRefused(await call(gw, "/v1/jobs", notJson), notJson, /malformed/);
    const t = s(0);
    const noSub = await new SignJWT({ preferred_username: "alice", email_verified: "true" })
      .setProtectedHeader({ alg: "RS256", kid: idp.key.kid })
      .setIssuer(idp.issuer)
      .setAudience("slurmgate")
      .setExpirationTime(t + 300)
      .sign(await importJWK(idp.key, "RS256"));
    expectRefused(await call(gw, "/v1/jobs", noSub), noSub, /'sub'/);
  });

  it("refetches keys once for an unknown kid, then not again within 30 s", async () => {
    await call(gw, "/v1/me", await sign({})); // keys are cached
    const before = idp.state.hits.filter((h) => h === "/jwks").length;
    const stranger = await newSigningKey();
    for (let i = 0; i < 5; i++) {
      const token = await sign({}, { key: stranger });
      expectRefused(await call(gw, "/v1/jobs", token), token, /unknown kid/);
    }
    expect(idp.state.hits.filter((h) => h === "/jwks").length).toBe(before + 1);
    clock.advance(31_000);
    const token = await sign({}, { key: stranger });
    expectRefused(await call(gw, "/v1/jobs", token), token, /unknown kid/);
    expect(idp.state.hits.filter((h) => h === "/jwks").length).toBe(before + 2);
  });

  it("remembers an admitted token no longer than it is valid", async () => {
    const token = await sign({ exp: s(-59_000) }); // expired, but within the tolerated skew
    expect((await call(gw, "/v1/jobs", token)).status).toBe(200);
    clock.advance(1_500); // within the auth cache's lifetime, past exp + 60 s
    expectRefused(await call(gw, "/v1/jobs", token), token, /expired/);
  });
});

describe("failed JWTs count against the caller's address", () => {
  it("like unknown opaque tokens: past the burst they are answered 429", async () => {
    const idp = await forgeIssuer();
    try {
      const gw = await createTestGateway({
        SLURMGATE_OIDC_ISSUERS: JSON.stringify([{ issuer: idp.issuer, audience: "slurmgate", user: {} }]),
        SLURMGATE_RATE_LIMIT_PER_SECOND: "1",
        SLURMGATE_RATE_LIMIT_BURST: "3",
      });
      const wrongAud = await idp.sign({ aud: "nope" }, { now: Date.now() });
      const answers: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await call(gw, "/v1/jobs", wrongAud);
        answers.push(`${res.status} ${String(res.body.detail)}`);
      }
      expect(answers.slice(0, 3)).toEqual(Array(3).fill("401 token is for another audience (aud)"));
      expect(answers.slice(3)).toEqual(Array(2).fill("429 too many failed authentications"));
    } finally {
      await idp.close();
    }
  });
});

describe("an IdP that misbehaves does not take the gateway down", () => {
  it("keeps cached keys working while the IdP is down; new kids fail closed", async () => {
    const idp = await forgeIssuer();
    const clock = testClock(Date.now());
    const gw = await createTestGateway(
      { SLURMGATE_OIDC_ISSUERS: JSON.stringify([{ issuer: idp.issuer, audience: "slurmgate", user: {} }]) },
      { clock },
    );
    await gw.user("alice");
    const good = await idp.sign({}, { now: clock.now() });
    expect((await call(gw, "/v1/jobs", good)).status).toBe(200);
    idp.state.mode = "error";
    clock.advance(JWKS_MAX_AGE_MS + 1_000); // the keys are due for a re-read, which fails
    const later = await idp.sign({}, { now: clock.now() });
    expect((await call(gw, "/v1/jobs", later)).status).toBe(200);
    const unknown = await idp.sign({}, { now: clock.now(), key: await newSigningKey() });
    expectRefused(await call(gw, "/v1/jobs", unknown), unknown, /unknown kid/);
    await idp.close(); // connection refused from now on
    clock.advance(JWKS_MAX_AGE_MS + 1_000);
    const after = await idp.sign({}, { now: clock.now() });
    expect((await call(gw, "/v1/jobs", after)).status).toBe(200);
  });

  for (const mode of ["huge", "slow", "slow-discovery", "error", "wrong-issuer"] as const) {
    it(`fails closed within the timeout when the IdP's keys are ${mode}, and still answers other requests`, async () => {
      const idp = await forgeIssuer();
      idp.state.mode = mode;
      try {
        const gw = await gatewayFor([{ issuer: idp.issuer, audience: "slurmgate", user: {} }]);
        const opaque = await gw.user("bob");
        const token = await idp.sign({}, { now: Date.now() });
        const started = Date.now();
        const pending = call(gw, "/v1/jobs", token);
        const other = Date.now();
        expect((await call(gw, "/v1/me", opaque)).status).toBe(200);
        expect(Date.now() - other).toBeLessThan(1_000);
        expectRefused(await pending, token, /signing keys are unavailable/);
        expect(Date.now() - started).toBeLessThan(JWKS_FETCH_TIMEOUT_MS + 1_500);
        const logged = JSON.stringify(gw.logs);
        expect(logged).toContain("fetching signing keys failed");
        expect(logged).not.toContain(token);
      } finally {
        await idp.close();
      }
    });
  }
});
