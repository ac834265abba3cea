/**
 * Users and tokens.
 */
import { z } from "@hono/zod-openapi";
import { CLUSTER_NAME, USER_NAME } from "./patterns.ts";
import { withOtherIssues } from "./strict.ts";

export const TokenKind = z.enum(["user", "agent", "admin"]).openapi("TokenKind");
export type TokenKind = z.infer<typeof TokenKind>;

/** Where a caller's identity came from: a slurmgate token, or a verified OIDC token (a person or a workload). */
export const Via = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("token") }).openapi({ description: "A slurmgate token (sgu_, sga_ or sgk_)." }),
    z
      .object({ kind: z.literal("oidc"), issuer: z.string(), subject: z.string() })
      .openapi({ description: "A person's OpenID Connect token from this issuer." }),
    z
      .object({
        kind: z.literal("workload"),
        issuer: z.string(),
        subject: z.string(),
        policy: z
          .number()
          .int()
          .min(0)
          .openapi({ description: "Index of the issuer's trust policy that admitted it." }),
      })
      .openapi({ description: "A workload's (CI) OpenID Connect token, admitted by a trust policy." }),
  ])
  .openapi("Via");
export type Via = z.infer<typeof Via>;

/**
 * "a user token", "an admin token", "an agent token": every message naming a kind of token says it
 * through here, so none reads "a admin token".
 *
 * @example aToken("admin") // "an admin token"
 */
export const aToken = (kind: string) => `${/^[aeio]/i.test(kind) ? "an" : "a"} ${kind} token`; // "a user": a consonant sound

export const User = z
  .strictObject({
    name: z.string().regex(USER_NAME, "lowercase POSIX-style name: [a-z_][a-z0-9_-]*, max 32"),
    admin: z.boolean().default(false),
    createdAt: z.string().optional(),
  })
  .openapi("User");

export const CreateToken = z
  .strictObject({
    kind: TokenKind,
    user: z.string().regex(USER_NAME).optional().openapi({
      description: "Required for user and admin tokens; on an agent token, binds it to that user (a personal agent).",
    }),
    cluster: z
      .string()
      .regex(CLUSTER_NAME)
      .optional()
      .openapi({ description: "Required for agent tokens: the one cluster it serves." }),
    label: z.string().max(100).default(""),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.kind === "agent" && !t.cluster) {
      ctx.addIssue({ code: "custom", path: ["cluster"], message: "an agent token is bound to one cluster" });
    }
    if (t.kind !== "agent" && !t.user) {
      ctx.addIssue({ code: "custom", path: ["user"], message: `${aToken(t.kind)} belongs to a user` });
    }
  }, withOtherIssues)
  .openapi("CreateToken");

export const TokenInfo = z
  .object({
    id: z.string(),
    kind: TokenKind,
    user: z.string().nullable(),
    cluster: z.string().nullable(),
    label: z.string(),
    prefix: z.string().openapi({ description: "First characters of the token, to recognise it." }),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    lastUsedAt: z.string().nullable(),
  })
  .openapi("TokenInfo");

export const CreatedToken = TokenInfo.extend({
  token: z.string().openapi({ description: "Shown once; only its hash is stored." }),
}).openapi("CreatedToken");
