/**
 * First start: while no admin exists, create one. With SLURMGATE_BOOTSTRAP_TOKEN that token becomes
 * the admin's; otherwise a fresh one is generated and returned so the entry can print it once.
 */
import type { Deps } from "./deps.ts";
import { createToken } from "./store/tokens.ts";
import { hasAdmin, upsertUser } from "./store/users.ts";

export async function ensureAdmin(deps: Deps, bootstrapToken?: string): Promise<{ created: boolean; token?: string }> {
  if (await hasAdmin(deps.db)) {
    return { created: false };
  }
  const now = deps.now();
  await upsertUser(deps.db, "admin", true, now);
  const created = await createToken(
    deps.db,
    { kind: "admin", user: "admin", label: "bootstrap", secret: bootstrapToken },
    now,
  );
  return { created: true, token: bootstrapToken ? undefined : created.token };
}
