// oidc-provider ships no types (and @types/oidc-provider is not a dependency): the little the test helper uses.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  type Client = { clientId: string };
  class IdToken {
    constructor(claims: Record<string, unknown>, options: { client: Client });
    scope: string;
    issue(options: { use: "idtoken"; expiresAt?: number }): Promise<string>;
  }
  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    Client: { find(id: string): Promise<Client | undefined> };
    IdToken: typeof IdToken;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}

declare module "oidc-provider/lib/adapters/memory_adapter.js" {
  /** The provider's own in-memory store, created once so several Provider instances can share it. */
  export function createMemoryAdapter(clockTolerance?: number): unknown;
}
