/**
 * The OAuth 2.0 device authorization grant (RFC 8628): ask the provider for a user code, let the
 * person confirm it in a browser anywhere, and poll the token endpoint meanwhile, at the pace the
 * provider sets. Web APIs only.
 */
import { OidcError } from "./errors.ts";
import { type OidcEndpoints, type OidcTokens, tokenRequest, untrustedUrl } from "./oidc.ts";
import { clip, postForm } from "./oidc-http.ts";
import { sleep as abortableSleep } from "./retry.ts";
import type { FetchLike } from "./transport.ts";

/** What the person is asked to do, and what the poll needs. */
export type DeviceAuthorization = {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  /** The URI with the code already in it, when the provider gives one. */
  verificationUriComplete?: string;
  /** Seconds the codes are good for. */
  expiresIn: number;
  /** Seconds between polls (RFC 8628 §3.2: 5 when the provider says nothing). */
  interval: number;
};

const GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";
/** RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval, for good. */
const SLOW_DOWN_MS = 5000;

/**
 * Starts a device sign-in: POST client id and scope to the device authorization endpoint.
 * @example const auth = await startDeviceAuthorization(endpoints, { clientId: "slurmgate", scope: "openid offline_access" });
 */
export async function startDeviceAuthorization(
  endpoints: OidcEndpoints,
  input: { clientId: string; scope: string; fetch?: FetchLike; signal?: AbortSignal },
): Promise<DeviceAuthorization> {
  const { issuer, deviceAuthorizationEndpoint } = endpoints;
  if (!deviceAuthorizationEndpoint) {
    throw new OidcError(
      issuer,
      "untrusted_discovery",
      `${issuer} does not offer the device flow (no device_authorization_endpoint)`,
    );
  }
  const body = await postForm(
    issuer,
    deviceAuthorizationEndpoint,
    { client_id: input.clientId, scope: input.scope },
    input.fetch,
    input.signal,
  );
  const bad = (why: string) => new OidcError(issuer, "invalid_response", `${issuer}'s device authorization: ${why}`);
  const { device_code, user_code, verification_uri, verification_uri_complete, expires_in, interval } = body;
  if (typeof device_code !== "string" || device_code === "") {
    throw bad("no device_code");
  }
  // The code and the URIs are printed for a person: printable and short, or refused.
  if (typeof user_code !== "string" || !/^[\x21-\x7e]{1,64}$/.test(user_code)) {
    throw bad("no printable user_code");
  }
  const uri = (name: string, value: unknown): string | undefined => {
    if (value === undefined) {
      return undefined;
    }
    let url: URL;
    try {
      url = new URL(String(value));
    } catch {
      throw bad(`${name} is not a URL`);
    }
    const why = untrustedUrl(url);
    if (why || String(value).length > 2048) {
      throw bad(`${name} ${clip(String(value))} ${why ?? "is too long"}`);
    }
    return url.href;
  };
  if (verification_uri === undefined) {
    throw bad("no verification_uri");
  }
  const seconds = (value: unknown, fallback: number, max: number) =>
    typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.min(value, max) : fallback;
  return {
    deviceCode: device_code,
    userCode: user_code,
    verificationUri: uri("verification_uri", verification_uri)!,
    verificationUriComplete: uri("verification_uri_complete", verification_uri_complete),
    expiresIn: seconds(expires_in, 600, 3600),
    interval: seconds(interval, 5, 60),
  };
}

/**
 * Polls the token endpoint until the person confirms (resolves with the tokens), denies
 * (`access_denied`) or the code expires (`expired_token`, or our own clock passing `expiresIn`).
 * `authorization_pending` waits `interval`; `slow_down` adds 5 s to it for the rest of the poll.
 * @example const tokens = await pollDeviceToken(endpoints, auth, { clientId: "slurmgate" });
 */
export async function pollDeviceToken(
  endpoints: OidcEndpoints,
  auth: DeviceAuthorization,
  input: {
    clientId: string;
    fetch?: FetchLike;
    signal?: AbortSignal;
    /** How to wait (tests observe the pace through it). */
    sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
    now?: () => number;
  },
): Promise<OidcTokens> {
  const wait = input.sleep ?? abortableSleep;
  const now = input.now ?? Date.now;
  const deadline = now() + auth.expiresIn * 1000;
  let intervalMs = auth.interval * 1000;
  for (;;) {
    await wait(intervalMs, input.signal);
    try {
      return await tokenRequest(
        endpoints.issuer,
        endpoints.tokenEndpoint,
        { grant_type: GRANT_TYPE, device_code: auth.deviceCode, client_id: input.clientId },
        input.fetch,
        input.signal,
      );
    } catch (err) {
      if (!(err instanceof OidcError)) {
        throw err;
      }
      if (err.code === "slow_down") {
        intervalMs += SLOW_DOWN_MS;
      } else if (err.code !== "authorization_pending" && !err.retryable) {
        throw err;
      }
      // Pending, slowed down, or the provider briefly unreachable: poll again while the code lives.
      if (now() + intervalMs > deadline) {
        throw new OidcError(
          endpoints.issuer,
          "expired_token",
          "the device code expired before the sign-in was confirmed",
        );
      }
    }
  }
}
