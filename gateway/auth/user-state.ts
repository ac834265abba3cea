/**
 * Whether a slurmgate user may act at all. One rule for every way in: opaque tokens (user,
 * admin, a personal agent's) and verified OIDC tokens, people and workloads alike.
 */
import { ApiProblem } from "../problem.ts";
import type { UserRow } from "../store/users.ts";

/** Refuses a disabled user with a 403 that names the user, never the credential. */
export function refuseDisabled(user: Pick<UserRow, "name" | "disabledAt">): void {
  if (user.disabledAt !== null) {
    throw new ApiProblem("forbidden", `user ${user.name} is disabled`, { field: "header.authorization" });
  }
}
