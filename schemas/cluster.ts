/**
 * Clusters as admins register them and as users see them.
 */
import { z } from "@hono/zod-openapi";
import { ABSOLUTE_PATH, CLUSTER_NAME, SLURM_NAME, USER_NAME } from "./patterns.ts";
import { Resources } from "./job.ts";
import { Inventory } from "./agent.ts";
import { AllowedSbatchOption } from "./sbatch.ts";

export const Profile = z
  .strictObject({
    partition: z.string().regex(SLURM_NAME).optional(),
    resources: Resources.default({}),
  })
  .openapi("Profile");

export const ClusterConfig = z
  .strictObject({
    name: z.string().regex(CLUSTER_NAME, "lowercase letters, digits and '-', starting with a letter"),
    description: z.string().max(500).default(""),
    sharedRoots: z.array(z.string().regex(ABSOLUTE_PATH, "an absolute path")).min(1).max(16).openapi({
      description:
        "Where job directories and bind sources may live; the first holds job directories. When the cluster's agent publishes its own roots, those are used.",
    }),
    allowedSbatchArgs: z.array(AllowedSbatchOption).max(64).default([]).openapi({
      description:
        "Options users may pass in extraSbatchArgs. When the cluster's agent publishes its own list, only options on both are offered.",
    }),
    profiles: z.record(z.string().regex(SLURM_NAME), Profile).default({}),
  })
  .openapi("ClusterConfig");
export type ClusterConfig = z.infer<typeof ClusterConfig>;

/** What an agent may read of its own cluster's config: the rules it also enforces itself. */
export const ClusterPolicy = z
  .object({
    name: z.string(),
    sharedRoots: z.array(z.string()),
    allowedSbatchArgs: z.array(z.string()),
  })
  .openapi("ClusterPolicy");
export type ClusterPolicy = z.infer<typeof ClusterPolicy>;

/** The most Slurm accounts one grant may name (a user rarely charges more than a handful). */
export const MAX_GRANT_ACCOUNTS = 64;

export const Grant = z
  .strictObject({
    user: z.string().regex(USER_NAME),
    cluster: z.string().regex(CLUSTER_NAME),
    partitions: z
      .array(z.union([z.string().regex(SLURM_NAME), z.literal("*")]))
      .min(1)
      .default(["*"])
      .openapi({ description: "Partitions the user may route to; '*' for all." }),
    accounts: z
      .array(z.string().regex(SLURM_NAME, "a Slurm account name: letters, digits, '.', '_' or '-' (max 64)"))
      .min(1)
      .max(MAX_GRANT_ACCOUNTS)
      .optional()
      .openapi({ description: "Slurm accounts the user may charge on this cluster; absent: any (Slurm decides)." }),
    defaultAccount: z
      .string()
      .regex(SLURM_NAME)
      .optional()
      .openapi({ description: "Charged when a job names no account; one of `accounts`." }),
  })
  .superRefine((g, ctx) => {
    if (g.defaultAccount !== undefined && !g.accounts?.includes(g.defaultAccount)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultAccount"],
        message: `must be one of accounts (${g.accounts?.join(", ") || "none given"})`,
      });
    }
  })
  .openapi("Grant");
export type Grant = z.infer<typeof Grant>;

export const AgentStatus = z
  .object({
    agentId: z.string(),
    version: z.string(),
    lastSeenAt: z.string(),
    stoppedAt: z.string().nullable().openapi({ description: "When this agent said goodbye; null while it runs." }),
    cycleMs: z.number().nullable(),
    mode: z.string(),
  })
  .openapi("AgentStatus");

export const ClusterView = z
  .object({
    name: z.string(),
    description: z.string(),
    alive: z
      .boolean()
      .openapi({ description: "An agent was seen within the liveness window and has not said goodbye since." }),
    lastSeenAt: z.string().nullable(),
    stoppedAt: z.string().nullable().openapi({
      description: "Set when no agent is alive and the last one seen stopped deliberately (said goodbye) at this time.",
    }),
    partitions: z.array(z.string()).openapi({ description: "Partitions you may use here." }),
    inventory: Inventory.nullable(),
    agents: z.array(AgentStatus),
    profiles: z.array(z.string()),
    profileDetails: z
      .record(z.string(), Profile)
      .openapi({ description: "What each profile sets: its partition and resources (the limits a job gets from it)." }),
    unavailablePartitions: z.array(z.object({ name: z.string(), reason: z.string() })).openapi({
      description:
        "Partitions the cluster has that you cannot use now, each with why: not in your grant, or not up in Slurm (jobs sent there wait).",
    }),
  })
  .openapi("ClusterView");
export type ClusterView = z.infer<typeof ClusterView>;
