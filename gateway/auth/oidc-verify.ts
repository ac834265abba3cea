/**
 * Verifies an OpenID Connect bearer token (a JWT) against the configured issuers with `jose`.
 * The unverified `iss` only picks which issuer's rules and keys apply; everything the gateway then
 * believes (issuer, audience, times, required claims) is checked on the verified token.
 *
 * Every refusal is a 401 whose reason names what was wrong and never repeats the token.
 */
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import type { Deps } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { claimMatches } from "./claim-match.ts";
import { issuerKeys, JwksUnavailable, refreshForUnknownKey } from "./jwks-cache.ts";
import type { OidcIssuer } from "./oidc-config.ts";

/** Clocks of the gateway and the IdP may differ by this much, never more. */
export const OIDC_CLOCK_TOLERANCE_S = 60;

const FIELD = "header.authorization";
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Three base64url segments (an empty signature too, so `alg: none` is refused by name, not as "unknown token"). */
export function looksLikeJwt(token: string): boolean {
  return JWT_SHAPE.test(token);
}

export type VerifiedOidcToken = { issuer: OidcIssuer; claims: JWTPayload & { exp: number } };

function refuse(reason: string): never {
  throw new ApiProblem("unauthorized", reason, {
    field: FIELD,
    headers: { "www-authenticate": 'Bearer realm="slurmgate", error="invalid_token"' },
  });
}

export async function verifyOidcToken(deps: Deps, token: string): Promise<VerifiedOidcToken> {
  let iss: unknown;
  let alg: unknown;
  try {
    iss = decodeJwt(token).iss;
    alg = decodeProtectedHeader(token).alg;
  } catch {
    refuse("malformed JWT: its header or claims are not base64url JSON");
  }
  const issuer = deps.config.SLURMGATE_OIDC_ISSUERS.find((i) => i.issuer === iss);
  if (!issuer) {
    refuse(typeof iss === "string" ? "the token's issuer is not trusted here" : "the token names no issuer (iss)");
  }
  if (typeof alg !== "string" || !(issuer.algorithms as string[]).includes(alg)) {
    refuse(
      `algorithm '${String(alg).slice(0, 20)}' not allowed; this issuer signs with ${issuer.algorithms.join(", ")}`,
    );
  }

  const getKey = await keyResolver(deps, issuer);
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, getKey, {
      issuer: issuer.issuer,
      audience: issuer.audience,
      algorithms: issuer.algorithms,
      clockTolerance: OIDC_CLOCK_TOLERANCE_S,
      currentDate: new Date(deps.now()),
      requiredClaims: ["exp", "sub"],
    }));
  } catch (e) {
    refuse(reasonOf(e));
  }
  for (const [name, expected] of Object.entries(issuer.requiredClaims ?? {})) {
    if (!claimMatches(claims[name], expected)) {
      refuse(`claim '${name}' does not have a value this gateway requires`);
    }
  }
  return { issuer, claims: claims as VerifiedOidcToken["claims"] };
}

/**
 * The issuer's cached keys; a `kid` not among them makes one (rate-limited) refetch, then the lookup
 * is tried again. Keys that cannot be fetched at all fail closed.
 */
async function keyResolver(deps: Deps, issuer: OidcIssuer): Promise<JWTVerifyGetKey> {
  let keys: JWK[];
  try {
    keys = await issuerKeys(deps, issuer);
  } catch (e) {
    if (e instanceof JwksUnavailable) {
      refuse("the issuer's signing keys are unavailable right now");
    }
    throw e;
  }
  return async (header, token) => {
    try {
      return await createLocalJWKSet({ keys })(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || !(await refreshForUnknownKey(deps, issuer))) {
        throw e;
      }
      keys = await issuerKeys(deps, issuer);
      return createLocalJWKSet({ keys })(header, token);
    }
  };
}

function reasonOf(e: unknown): string {
  if (e instanceof errors.JWTExpired) {
    return "token expired";
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case "nbf":
      case "iat":
        return e.reason === "check_failed" ? "token not yet valid" : `claim '${e.claim}' is not a valid time`;
      case "aud":
        return "token is for another audience (aud)";
      case "iss":
        return "token is from another issuer (iss)";
      default:
        return e.reason === "missing" ? `token lacks the '${e.claim}' claim` : `claim '${e.claim}' is invalid`;
    }
  }
  if (e instanceof errors.JOSEAlgNotAllowed) {
    return "algorithm not allowed";
  }
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
    return "token signed with a key the issuer does not publish (unknown kid)";
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return "signature does not verify";
  }
  if (e instanceof errors.JOSENotSupported) {
    return "token uses an unsupported key or algorithm";
  }
  if (e instanceof errors.JOSEError) {
    return "malformed JWT";
  }
  if (e instanceof ApiProblem) {
    throw e;
  }
  return "token could not be verified";
}
