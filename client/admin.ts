/**
 * Admin helpers (admin token required): users, tokens, clusters, grants. What the CLI's
 * `user`, `token` and `cluster` verbs use.
 */
import type { RawClient } from "./raw.ts";
import type {
  ClusterConfig,
  ClusterConfigInput,
  CreateTokenInput,
  CreatedToken,
  Grant,
  GrantInput,
  TokenInfo,
  User,
  UserInput,
} from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";

/**
 * The admin API, grouped by resource.
 * @example const { token } = await client.admin.tokens.create({ kind: "user", user: "alice", label: "laptop" });
 */
export type AdminApi = {
  users: { list(): Promise<User[]>; upsert(user: UserInput): Promise<User> };
  tokens: {
    list(filter?: { user?: string }): Promise<TokenInfo[]>;
    create(input: CreateTokenInput): Promise<CreatedToken>;
    revoke(id: string): Promise<void>;
  };
  clusters: { list(): Promise<ClusterConfig[]>; upsert(config: ClusterConfigInput): Promise<ClusterConfig> };
  grants: {
    list(filter?: { user?: string }): Promise<Grant[]>;
    upsert(grant: GrantInput): Promise<Grant>;
    remove(user: string, cluster: string): Promise<void>;
  };
};

const items = async <T>(call: Promise<{ data?: { items: T[] }; error?: unknown; response: Response }>) =>
  (await unwrap(call, shapes.items)).items;

/**
 * Builds the admin helpers over a raw client.
 * @example const admin = createAdminApi(raw); await admin.users.upsert({ name: "alice" });
 */
export function createAdminApi(raw: RawClient): AdminApi {
  return {
    users: {
      list: () => items(raw.GET("/v1/admin/users")),
      upsert: (user) => unwrap(raw.POST("/v1/admin/users", { body: { admin: false, ...user } }), shapes.object),
    },
    tokens: {
      list: (filter = {}) => items(raw.GET("/v1/admin/tokens", { params: { query: filter } })),
      create: (input) => unwrap(raw.POST("/v1/admin/tokens", { body: { label: "", ...input } }), shapes.object),
      revoke: async (id) => {
        await unwrap(raw.DELETE("/v1/admin/tokens/{id}", { params: { path: { id } } }));
      },
    },
    clusters: {
      list: () => items(raw.GET("/v1/admin/clusters")),
      upsert: (config) =>
        unwrap(
          raw.POST("/v1/admin/clusters", {
            body: { description: "", allowedSbatchArgs: [], profiles: {}, ...config },
          }),
          shapes.object,
        ),
    },
    grants: {
      list: (filter = {}) => items(raw.GET("/v1/admin/grants", { params: { query: filter } })),
      upsert: (grant) => unwrap(raw.POST("/v1/admin/grants", { body: { partitions: ["*"], ...grant } }), shapes.object),
      remove: async (user, cluster) => {
        await unwrap(raw.DELETE("/v1/admin/grants/{user}/{cluster}", { params: { path: { user, cluster } } }));
      },
    },
  };
}
