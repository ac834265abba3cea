/**
 * Is SLURMGATE_AGENT_TOKEN this cluster's agent token? Asked of the gateway (GET /v1/me) before the
 * agent touches anything: an agent running on another cluster's token would lease that cluster's
 * jobs and submit them here.
 */
import { aToken } from "../schemas/admin.ts";
import type { GatewayApi } from "./gateway-api.ts";
import type { Logger } from "./log.ts";

/** The token is not usable for this cluster: the agent must not start. */
export class TokenMismatchError extends Error {
  override readonly name = "TokenMismatchError";
}

const createHint = (cluster: string) => `create one with: slurmgate token create --cluster ${cluster}`;

/**
 * Why a token of `me` cannot be `cluster`'s agent token, or undefined when it can.
 *
 * @example tokenMismatch({ kind: "agent", cluster: "beta" }, "alpha")
 *   // "SLURMGATE_AGENT_TOKEN is bound to cluster beta, not SLURMGATE_CLUSTER=alpha; create one with: …"
 */
export function tokenMismatch(me: { kind: string; cluster: string | null }, cluster: string): string | undefined {
  if (me.kind !== "agent") {
    return `SLURMGATE_AGENT_TOKEN is ${aToken(me.kind)}, not an agent token; ${createHint(cluster)}`;
  }
  if (me.cluster !== cluster) {
    return `SLURMGATE_AGENT_TOKEN is bound to cluster ${me.cluster}, not SLURMGATE_CLUSTER=${cluster}; ${createHint(cluster)}`;
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once the gateway confirms the token is `cluster`'s agent token; throws
 * TokenMismatchError when it says otherwise (wrong cluster, wrong kind, unknown, revoked or expired).
 * When the gateway cannot be reached: throws at once, or with `retry` (a daemon) asks again with
 * backoff, since a gateway that is down for a while is no reason for the agent not to start.
 */
export async function verifyAgentToken(
  api: GatewayApi,
  cluster: string,
  options: { retry: boolean; log: Logger; sleep?: (ms: number) => Promise<unknown> },
): Promise<void> {
  for (let failures = 0; ; failures++) {
    const me = await api.me();
    if (me.ok) {
      const mismatch = tokenMismatch(me.value, cluster);
      if (mismatch) {
        throw new TokenMismatchError(mismatch);
      }
      return;
    }
    if (!me.retryable) {
      throw new TokenMismatchError(
        me.status === 401
          ? `the gateway refused SLURMGATE_AGENT_TOKEN (${me.message}): it is unknown, revoked or expired; ${createHint(cluster)}`
          : `the gateway refused to say whom SLURMGATE_AGENT_TOKEN belongs to (HTTP ${me.status}: ${me.message})`,
      );
    }
    if (!options.retry) {
      throw new Error(`cannot check SLURMGATE_AGENT_TOKEN with the gateway: ${me.message}`);
    }
    const ms = Math.min(30_000, 1_000 * 2 ** Math.min(failures, 5));
    options.log("warn", "gateway unreachable; checking the agent token again", { message: me.message, inMs: ms });
    await (options.sleep ?? sleep)(ms);
  }
}
