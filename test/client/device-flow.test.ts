/**
 * The client's own device-flow polling (RFC 8628 §3.4–3.5), against msw: the pace it keeps
 * (`interval`, 5 s when unsaid, +5 s for good on each `slow_down`), what ends the poll, and what a
 * hostile device authorization answer cannot make it print. The real provider is in test/cli/oidc-*.
 */
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type DeviceAuthorization,
  OidcError,
  type OidcEndpoints,
  pollDeviceToken,
  startDeviceAuthorization,
} from "../../client/index.ts";

const ISSUER = "https://idp.test";
const ENDPOINTS: OidcEndpoints = {
  issuer: ISSUER,
  tokenEndpoint: `${ISSUER}/token`,
  deviceAuthorizationEndpoint: `${ISSUER}/device/auth`,
};
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledFrame: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const ID_TOKEN = `${b64({ alg: "RS256" })}.${b64({ sub: "u1", preferred_username: "alice", exp: 2_000_000_000 })}.sig`;
const oauthError = (error: string, status = 400) => HttpResponse.json({ error }, { status });
const AUTH: DeviceAuthorization = {
  deviceCode: "dc",
  userCode: "ABCD-EFGH",
  verificationUri: `${ISSUER}/device`,
  expiresIn: 600,
  interval: 5,
};

/** The token endpoint answers these in turn (the last one repeats); every poll's form is kept. */
function tokenEndpoint(answers: (() => Response)[]) {
  const forms: URLSearchParams[] = [];
  server.use(
    http.post(`${ISSUER}/token`, async ({ request }) => {
      forms.push(new URLSearchParams(await request.text()));
      return (answers[Math.min(forms.length - 1, answers.length - 1)] as () => Response)();
    }),
  );
  return forms;
}

/** A sleep that records the pace and a clock that moves by it, so no test waits for real. */
function clock() {
  let now = 1_000_000;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
  };
}

describe("polling the token endpoint", () => {
  it("waits the interval while pending, adds 5 s for good on slow_down, and returns the tokens", async () => {
    const forms = tokenEndpoint([
      () => oauthError("authorization_pending"),
      () => oauthError("authorization_pending"),
      () => oauthError("slow_down"),
      () => oauthError("authorization_pending"),
      () => HttpResponse.json({ id_token: ID_TOKEN, refresh_token: "rt1", access_token: "at", token_type: "Bearer" }),
    ]);
    const c = clock();
    const tokens = await pollDeviceToken(ENDPOINTS, AUTH, { clientId: "slurmgate", sleep: c.sleep, now: c.now });
    expect(c.waits).toEqual([5000, 5000, 5000, 10_000, 10_000]);
    expect(tokens).toMatchObject({ idToken: ID_TOKEN, refreshToken: "rt1", subject: "u1", username: "alice" });
    expect(tokens.expiresAt).toBe(new Date(2_000_000_000 * 1000).toISOString());
    expect(forms[0]?.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:device_code");
    expect(forms[0]?.get("device_code")).toBe("dc");
    expect(forms[0]?.get("client_id")).toBe("slurmgate");
  });

  it("keeps the provider's own interval, and each slow_down stacks", async () => {
    tokenEndpoint([
      () => oauthError("slow_down"),
      () => oauthError("slow_down"),
      () => HttpResponse.json({ id_token: ID_TOKEN }),
    ]);
    const c = clock();
    await pollDeviceToken(ENDPOINTS, { ...AUTH, interval: 2 }, { clientId: "slurmgate", sleep: c.sleep, now: c.now });
    expect(c.waits).toEqual([2000, 7000, 12_000]);
  });

  it("stops at once on access_denied and on expired_token, with the provider's code", async () => {
    for (const code of ["access_denied", "expired_token", "invalid_client"]) {
      const forms = tokenEndpoint([() => oauthError("authorization_pending"), () => oauthError(code)]);
      const c = clock();
      const err = await pollDeviceToken(ENDPOINTS, AUTH, { clientId: "slurmgate", sleep: c.sleep, now: c.now }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OidcError);
      expect((err as OidcError).code).toBe(code);
      expect(forms).toHaveLength(2);
    }
  });

  it("gives up by its own clock when the code's lifetime is over, though the provider still says pending", async () => {
    const forms = tokenEndpoint([() => oauthError("authorization_pending")]);
    const c = clock();
    const err = await pollDeviceToken(
      ENDPOINTS,
      { ...AUTH, expiresIn: 17 },
      { clientId: "slurmgate", sleep: c.sleep, now: c.now },
    ).catch((e: unknown) => e);
    expect((err as OidcError).code).toBe("expired_token");
    expect(forms).toHaveLength(3);
  });

  it("rides out a provider that is briefly down or answers a 503 page, then succeeds", async () => {
    tokenEndpoint([
      () => HttpResponse.error(),
      () => new HttpResponse("<html>busy</html>", { status: 503, headers: { "content-type": "text/html" } }),
      () => HttpResponse.json({ id_token: ID_TOKEN }),
    ]);
    const c = clock();
    const tokens = await pollDeviceToken(ENDPOINTS, AUTH, { clientId: "slurmgate", sleep: c.sleep, now: c.now });
    expect(tokens.subject).toBe("u1");
  });

  it("refuses a success without an ID token, or with one that is not a JWT", async () => {
    for (const body of [{ access_token: "at" }, { id_token: "not-a-jwt" }, { id_token: `${b64({})}.${b64({})}.s` }]) {
      tokenEndpoint([() => HttpResponse.json(body)]);
      const c = clock();
      const err = await pollDeviceToken(ENDPOINTS, AUTH, { clientId: "slurmgate", sleep: c.sleep, now: c.now }).catch(
        (e: unknown) => e,
      );
      expect((err as OidcError).code).toBe("invalid_response");
    }
  });
});

describe("starting a device sign-in", () => {
  it("defaults the interval to 5 s and keeps the complete URI", async () => {
    server.use(
      http.post(`${ISSUER}/device/auth`, () =>
        HttpResponse.json({
          device_code: "dc",
          user_code: "WXYZ-1234",
          verification_uri: `${ISSUER}/device`,
          verification_uri_complete: `${ISSUER}/device?user_code=WXYZ-1234`,
          expires_in: 600,
        }),
      ),
    );
    const auth = await startDeviceAuthorization(ENDPOINTS, { clientId: "slurmgate", scope: "openid" });
    expect(auth).toEqual({
      deviceCode: "dc",
      userCode: "WXYZ-1234",
      verificationUri: `${ISSUER}/device`,
      verificationUriComplete: `${ISSUER}/device?user_code=WXYZ-1234`,
      expiresIn: 600,
      interval: 5,
    });
  });

  it("refuses what it would print if it cannot be printed safely: control characters, javascript: or plain-http URIs", async () => {
    const base = { device_code: "dc", user_code: "ABCD", verification_uri: `${ISSUER}/device`, expires_in: 600 };
    const hostile = [
      { ...base, user_code: "AB\u001b[2JCD" },
      { ...base, user_code: "" },
      { ...base, verification_uri: "javascript:alert(1)" },
      { ...base, verification_uri: "http://evil.example.org/device" },
      { ...base, verification_uri_complete: "data:text/html,<script>" },
      { ...base, verification_uri: undefined },
    ];
    for (const body of hostile) {
      server.use(http.post(`${ISSUER}/device/auth`, () => HttpResponse.json(body)));
      const err = await startDeviceAuthorization(ENDPOINTS, { clientId: "slurmgate", scope: "openid" }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OidcError);
      expect((err as Error).message).not.toContain("\u001b");
    }
  });
});
