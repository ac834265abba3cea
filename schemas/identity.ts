/**
 * Whose jobs an agent may run. The gateway never chooses a POSIX identity: a personal agent's
 * user comes from its token, and a site agent publishes only the slurmgate names its own mapping
 * file lists; the POSIX side of the mapping stays on the cluster.
 */
import { z } from "@hono/zod-openapi";
import { CLUSTER_NAME, USER_NAME } from "./patterns.ts";

/** The most slurmgate users one site agent may publish (a large centre's accounts, with room). */
export const MAX_MAPPED_USERS = 100_000;

export const AgentIdentity = z
  .discriminatedUnion("mode", [
    z.strictObject({ mode: z.literal("self") }).openapi({
      description: "Runs every job of its cluster as the account running the agent (a single-tenant setup).",
    }),
    z.strictObject({ mode: z.literal("personal") }).openapi({
      description: "Runs only its token's user's jobs, unprivileged, as that user.",
    }),
    z.strictObject({
      mode: z.literal("site"),
      users: z.array(z.string().regex(USER_NAME)).max(MAX_MAPPED_USERS).openapi({
        description: "The slurmgate users the agent's mapping file maps; it leases only their jobs.",
      }),
    }),
  ])
  .openapi("AgentIdentity");
export type AgentIdentity = z.infer<typeof AgentIdentity>;

/** A user's own personal agent token for one cluster (`slurmgate token create --agent --cluster X`). */
export const CreatePersonalAgentToken = z
  .object({
    cluster: z.string().regex(CLUSTER_NAME),
    label: z.string().max(100).default(""),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
  })
  .strict()
  .openapi("CreatePersonalAgentToken");

/** Rejection codes of the identity checks an agent runs on every leased job. */
export const IDENTITY_REJECT_CODES = [
  "owner_not_mapped",
  "owner_not_agent_user",
  "owner_unknown_account",
  "owner_privileged_account",
  "account_not_associated",
  "sudo_refused",
] as const;
