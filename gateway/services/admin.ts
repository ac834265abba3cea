/**
 * The admin's use cases that check more than the schema can: users, tokens and grants that must
 * name things that exist. The store clears the caches its writes affect (db/caches.ts).
 */
import type { Grant, TokenKind } from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { getCluster } from "../store/clusters.ts";
import { listGrants, upsertGrant } from "../store/grants.ts";
import { createToken } from "../store/tokens.ts";
import { getUser, upsertUser } from "../store/users.ts";

const DAY_MS = 86_400_000;

async function existingCluster(deps: Deps, cluster: string): Promise<void> {
  if (!(await getCluster(deps.db, cluster))) {
    throw new ApiProblem("not_found", `cluster ${cluster} is not registered`, { field: "body.cluster" });
  }
}

async function existingUser(deps: Deps, user: string) {
  const found = await getUser(deps.db, user);
  if (!found) {
    throw new ApiProblem("not_found", `user ${user} does not exist`, { field: "body.user" });
  }
  return found;
}

export async function saveUser(
  deps: Deps,
  principal: Principal,
  user: { name: string; admin: boolean; disabled?: boolean },
) {
  if (user.disabled && principal.kind === "admin" && principal.user === user.name) {
    // Locking out the caller could leave a gateway with no working admin token at all.
    throw new ApiProblem("validation_failed", "you cannot disable yourself; ask another admin", {
      field: "body.disabled",
    });
  }
  return upsertUser(deps.db, user.name, user.admin, deps.now(), user.disabled);
}

type TokenRequest = { kind: TokenKind; user?: string; cluster?: string; label: string; expiresInDays?: number };

/** The one place a token is issued through the API: the admin's route and a user's personal agent token. */
async function issue(deps: Deps, input: TokenRequest) {
  const now = deps.now();
  return createToken(
    deps.db,
    {
      kind: input.kind,
      // An agent token with a user is that user's personal agent; without one, a site agent.
      user: input.user ?? null,
      cluster: input.kind === "agent" ? input.cluster : null,
      label: input.label,
      expiresAt: input.expiresInDays ? now + input.expiresInDays * DAY_MS : null,
    },
    now,
  );
}

export async function issueToken(deps: Deps, input: TokenRequest) {
  const user = input.user ? await existingUser(deps, input.user) : undefined;
  if (input.kind === "admin" && !user?.admin) {
    throw new ApiProblem("validation_failed", `user ${input.user} is not an admin`, { field: "body.user" });
  }
  if (input.cluster) {
    await existingCluster(deps, input.cluster);
  }
  return issue(deps, input);
}

/** A user's own agent token: bound to (cluster, that user), on a cluster they are granted. */
export async function issuePersonalAgentToken(
  deps: Deps,
  user: string,
  input: { cluster: string; label: string; expiresInDays?: number },
) {
  await existingCluster(deps, input.cluster);
  const granted = (await listGrants(deps.db, user)).some((g) => g.cluster === input.cluster);
  if (!granted) {
    throw new ApiProblem("forbidden", `you are not granted cluster ${input.cluster}; ask an admin for a grant`, {
      field: "body.cluster",
    });
  }
  return issue(deps, { ...input, kind: "agent", user });
}

export async function saveGrant(deps: Deps, grant: Grant): Promise<Grant> {
  await existingUser(deps, grant.user);
  await existingCluster(deps, grant.cluster);
  await upsertGrant(deps.db, grant);
  return grant;
}
