/**
 * How a verified OIDC token becomes a principal: a workload by the first `trust` policy whose
 * claims all match, else a person by the issuer's `user` rule. The token's signature, issuer,
 * audience and times are already checked. Every refusal names the rule and the claims it looked
 * at (a token's claim values are fine to show), never the token.
 */
import type { JWTPayload } from "jose";
import { JobSpec, USER_NAME } from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { getUser } from "../store/users.ts";
import { createUserOnFirstSight, type FirstGrants } from "../store/first-sight.ts";
import { hashToken } from "../tokens.ts";
import { claimsMatch, describeClaims } from "./claim-match.ts";
import type { OidcIssuer, TrustPolicy } from "./oidc-config.ts";
import { refuseDisabled } from "./user-state.ts";

const FIELD = "header.authorization";

type UserRule = NonNullable<OidcIssuer["user"]>;

const refuse = (detail: string) => new ApiProblem("forbidden", detail, { field: FIELD });

export async function principalFromClaims(deps: Deps, issuer: OidcIssuer, claims: JWTPayload): Promise<Principal> {
  const subject = typeof claims.sub === "string" ? claims.sub : "";
  const tokenId = `oidc:${await hashToken(`${issuer.issuer}\n${subject}`)}`;
  if (issuer.trust) {
    const index = issuer.trust.findIndex((policy) => claimsMatch(claims, policy.match));
    const policy = issuer.trust[index];
    if (policy) {
      // Resolved before the user is read: a token its policy cannot label is refused whoever it acts as.
      const labels = policy.scope?.labels ? resolveLabels(issuer, index, policy, claims) : undefined;
      await existingUser(deps, policy.actAs, `trust policy ${index} of ${issuer.issuer} acts as`);
      return {
        kind: "user",
        user: policy.actAs,
        tokenId,
        via: { kind: "workload", issuer: issuer.issuer, subject, policy: index },
        ...(policy.scope ? { scope: { ...policy.scope, labels } } : {}),
      };
    }
    if (!issuer.user) {
      const compared = describeClaims(
        claims,
        issuer.trust.flatMap((p) => Object.keys(p.match)),
      );
      throw refuse(`no trust policy of ${issuer.issuer} admits this token (compared ${compared})`);
    }
  }
  const rule: UserRule = issuer.user ?? { claim: "preferred_username" };
  const name = userNameOf(issuer, rule, claims);
  const user = await getUser(deps.db, name);
  if (user) {
    refuseDisabled(user);
  } else if (rule.create) {
    await createUserOnFirstSight(deps.db, name, grantsFrom(rule.create, claims), deps.now());
    // Read back: a concurrent request may have won, or an admin may have disabled the name meanwhile.
    await existingUser(deps, name, `the user rule of ${issuer.issuer} names`);
  } else {
    throw refuse(`no slurmgate user ${name}, and the user rule of ${issuer.issuer} does not create users`);
  }
  return {
    kind: "user", // admin routes keep needing an sgk_ token: an IdP account alone never administers the gateway
    user: name,
    tokenId,
    via: { kind: "oidc", issuer: issuer.issuer, subject },
  };
}

async function existingUser(deps: Deps, name: string, what: string) {
  const user = await getUser(deps.db, name);
  if (!user) {
    throw refuse(`${what} user ${name}, which does not exist`);
  }
  refuseDisabled(user);
  return user;
}

const patterns = new WeakMap<UserRule, RegExp>();

/** The configured pattern, anchored: `ab` must match the whole name, not a part of it. */
function patternOf(rule: UserRule): RegExp | undefined {
  if (rule.pattern === undefined) {
    return undefined;
  }
  let compiled = patterns.get(rule);
  if (!compiled) {
    compiled = new RegExp(`^(?:${rule.pattern})$`);
    patterns.set(rule, compiled);
  }
  return compiled;
}

function userNameOf(issuer: OidcIssuer, rule: UserRule, claims: JWTPayload): string {
  const value = claims[rule.claim];
  const where = `the user rule of ${issuer.issuer} (claim ${rule.claim}`;
  if (typeof value !== "string") {
    throw refuse(`${where}) finds no such string claim in the token (${describeClaims(claims, [rule.claim])})`);
  }
  const pattern = patternOf(rule);
  if (pattern && !pattern.test(value)) {
    throw refuse(`${where}, pattern ${rule.pattern}) refuses ${describeClaims(claims, [rule.claim])}`);
  }
  if (!USER_NAME.test(value)) {
    throw refuse(
      `${where}) gives ${describeClaims(claims, [rule.claim])}, not a slurmgate user name ([a-z_][a-z0-9_-]*, max 32)`,
    );
  }
  return value;
}

/** The grants a new user gets: the union over every group value the token carries. */
function grantsFrom(create: NonNullable<UserRule["create"]>, claims: JWTPayload): FirstGrants {
  const raw = claims[create.grantsFromClaim];
  const values = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw.filter((v) => typeof v === "string") : [];
  const out: FirstGrants = new Map();
  for (const value of values) {
    // Own properties only: a group named "__proto__" or "constructor" confers nothing.
    const conferred = Object.hasOwn(create.grants, value) ? create.grants[value] : undefined;
    for (const [cluster, partitions] of Object.entries(conferred ?? {})) {
      const merged = new Set([...(out.get(cluster) ?? []), ...partitions]);
      out.set(cluster, merged.has("*") ? ["*"] : [...merged].sort());
    }
  }
  return out;
}

/** `{claim}` in a forced label becomes that claim of the token; a claim it lacks refuses the token. */
function resolveLabels(
  issuer: OidcIssuer,
  index: number,
  policy: TrustPolicy,
  claims: JWTPayload,
): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, template] of Object.entries(policy.scope?.labels ?? {})) {
    labels[key] = template.replace(/\{([^{}]+)\}/g, (_, name: string) => {
      const value = claims[name];
      if (typeof value !== "string" && typeof value !== "number") {
        throw refuse(
          `trust policy ${index} of ${issuer.issuer} forces label ${key}=${template}, but the token has no usable '${name}' claim (${describeClaims(claims, [name])})`,
        );
      }
      return String(value);
    });
  }
  const checked = JobSpec.shape.labels.safeParse(labels);
  if (!checked.success) {
    throw refuse(
      `trust policy ${index} of ${issuer.issuer}: the forced labels are not valid job labels (${checked.error.issues[0]?.message})`,
    );
  }
  return labels;
}
