/**
 * How a verified OIDC token becomes a principal: a person by the issuer's `user` rule, or a workload by
 * the first matching `trust` policy. The token's signature, issuer, audience and times are already checked.
 */
import type { JWTPayload } from "jose";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { getUser } from "../store/admin.ts";
import type { OidcIssuer } from "./oidc-config.ts";

const FIELD = "header.authorization";

export async function principalFromClaims(deps: Deps, issuer: OidcIssuer, claims: JWTPayload): Promise<Principal> {
  const claim = issuer.user?.claim;
  const name = claim ? claims[claim] : undefined;
  if (typeof name !== "string") {
    throw new ApiProblem("unauthorized", `the token carries no '${claim ?? "user"}' claim naming a slurmgate user`, {
      field: FIELD,
    });
  }
  const user = await getUser(deps.db, name);
  if (!user) {
    throw new ApiProblem("forbidden", `no slurmgate user '${name}'`, { field: FIELD });
  }
  return {
    kind: "user", // admin routes keep needing an sgk_ token: an IdP account alone never administers the gateway
    user: user.name,
    tokenId: `oidc:${issuer.issuer}#${claims.sub ?? ""}`,
    via: { kind: "oidc", issuer: issuer.issuer, subject: String(claims.sub ?? "") },
  };
}
