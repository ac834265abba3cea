/**
 * Which OpenID Connect issuers the gateway trusts, and how a verified token becomes a slurmgate
 * principal. Configured as JSON in SLURMGATE_OIDC_ISSUERS (the same on Node and Workers).
 *
 * An issuer maps people (`user`: a claim names the slurmgate user) and/or workloads (`trust`: CI
 * tokens whose claims match a policy act as a fixed user, optionally with a narrower scope).
 * @example
 * [{ "issuer": "https://idp.example.org/realms/hpc", "audience": "slurmgate",
 *    "user": { "claim": "preferred_username", "pattern": "^[a-z][a-z0-9-]{1,31}$" } },
 *  { "issuer": "https://token.actions.githubusercontent.com", "audience": "slurmgate",
 *    "trust": [{ "match": { "repository": "org/vision", "ref": "refs/heads/main" }, "actAs": "ci-vision",
 *                "scope": { "submitOnly": true, "clusters": ["alpha"], "labels": { "repo": "{repository}", "sha": "{sha}" } } }] }]
 */
import { z } from "zod";
import { CLUSTER_NAME, LABEL_KEY, USER_NAME } from "../../schemas/patterns.ts";

/** Asymmetric algorithms only: an HMAC key would be a shared secret, and `none` is never accepted. */
export const OIDC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "EdDSA",
] as const;

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

const ClaimValue = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** A person's token: `claim` (after an optional `pattern` check) is the slurmgate user name. */
export const OidcUserRule = z.strictObject({
  claim: z.string().min(1).default("preferred_username"),
  /** The claim must match this regular expression as a whole (it is anchored), or the token is refused. */
  pattern: z.string().min(1).refine(compiles, "not a valid JavaScript regular expression").optional(),
  /** Create the user on first sight; grants come from `grantsFromClaim` values listed in `grants`. */
  create: z
    .strictObject({
      grantsFromClaim: z.string().min(1).default("groups"),
      /** group/role value → grants it confers: cluster → partitions (["*"] for all). */
      grants: z.record(z.string(), z.record(z.string(), z.array(z.string()))).default({}),
    })
    .optional(),
});

/** What a workload acting through a trust policy may do, beyond what its user's grants allow. */
export const WorkloadScope = z.strictObject({
  /** Only submit, read and cancel its own jobs: no tokens, no admin, no agent routes. */
  submitOnly: z.boolean().default(false),
  /** Only these clusters. */
  clusters: z.array(z.string().regex(CLUSTER_NAME)).min(1).optional(),
  /** Labels forced onto every job it submits; `{claim}` is replaced by that claim of the token. */
  labels: z.record(z.string().regex(LABEL_KEY), z.string()).optional(),
});
export type WorkloadScope = z.infer<typeof WorkloadScope>;

export const TrustPolicy = z.strictObject({
  /** Every listed claim must equal the value (or one of the values); a value ending in `*` is a prefix. */
  match: z.record(z.string(), ClaimValue).refine((m) => Object.keys(m).length > 0, "name at least one claim"),
  actAs: z.string().regex(USER_NAME),
  scope: WorkloadScope.optional(),
});
export type TrustPolicy = z.infer<typeof TrustPolicy>;

export const OidcIssuer = z
  .strictObject({
    /** Must equal the token's `iss` exactly; discovery is `<issuer>/.well-known/openid-configuration`. */
    issuer: z.string().url(),
    audience: ClaimValue,
    algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(["RS256", "ES256"]),
    /** Skip discovery and read keys here (useful when discovery is not reachable from the gateway). */
    jwksUri: z.string().url().optional(),
    /** Claims every token of this issuer must carry with these values (same matching as `match`). */
    requiredClaims: z.record(z.string(), ClaimValue).optional(),
    user: OidcUserRule.optional(),
    trust: z.array(TrustPolicy).min(1).optional(),
    /**
     * A public client (no secret) registered at the IdP for the web page, with redirect URI
     * `<gateway>/ui/` and the gateway's origin allowed for CORS. Only issuers that set it get a
     * "Sign in with …" button, and only their origins are in the page's connect-src. The page's
     * bearer is the ID token, whose `aud` is this client id: it must be one of `audience`.
     */
    browserClientId: z.string().min(1).max(200).optional(),
  })
  .refine((i) => i.user !== undefined || i.trust !== undefined, "give `user`, `trust` or both")
  .refine((i) => i.browserClientId === undefined || i.user !== undefined, {
    message: "browserClientId needs a `user` rule: people sign in with it",
    path: ["browserClientId"],
  })
  .refine((i) => i.browserClientId === undefined || [i.audience].flat().includes(i.browserClientId), {
    message: "browserClientId must be one of `audience`: the page's bearer is the ID token issued to it",
    path: ["browserClientId"],
  });
export type OidcIssuer = z.infer<typeof OidcIssuer>;

export const OidcIssuers = z.array(OidcIssuer);

/** What the web page needs to offer "Sign in with …": public values only. */
export type BrowserIssuer = { issuer: string; clientId: string };

/** The issuers people may sign in with from the web page (those that name a browser client). */
export function browserIssuers(issuers: readonly OidcIssuer[]): BrowserIssuer[] {
  return issuers.flatMap((i) => (i.browserClientId ? [{ issuer: i.issuer, clientId: i.browserClientId }] : []));
}
