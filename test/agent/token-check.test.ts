/**
 * verifyAgentToken against a real in-process gateway: which tokens may run as which cluster's
 * agent, and how a gateway that cannot be reached at start is treated (a daemon waits for it,
 * `--once` gives up), with the network failures injected in front of the real app.
 */
import { describe, expect, it } from "vitest";
import { createGatewayApi } from "../../agent/gateway-api.ts";
import { TokenMismatchError, verifyAgentToken } from "../../agent/token-check.ts";
import { createToken, revokeToken } from "../../gateway/store/tokens.ts";
import { createWorld } from "../gateway/world.ts";

const quiet = () => {};

async function setup(failFirst = 0) {
  const w = await createWorld();
  let calls = 0;
  const flaky: typeof fetch = async (input, init) => {
    calls++;
    if (calls <= failFirst) {
      throw new TypeError("fetch failed: connect ECONNREFUSED");
    }
    const request = input instanceof Request ? input : new Request(input, init);
    return w.app.request(request);
  };
  const api = (token: string) => createGatewayApi({ baseUrl: "http://gateway.test", token, fetch: flaky });
  return { w, api, calls: () => calls };
}

describe("verifyAgentToken", () => {
  it("accepts the cluster's own agent token", async () => {
    const { w, api } = await setup();
    await expect(
      verifyAgentToken(api(w.tokens.alphaAgent), "alpha", { retry: false, log: quiet }),
    ).resolves.toBeUndefined();
  });

  it("refuses another cluster's agent token, user and admin tokens, revoked and unknown ones", async () => {
    const { w, api } = await setup();
    const revoked = await createToken(w.db, { kind: "agent", cluster: "alpha" }, w.deps.now());
    await revokeToken(w.db, revoked.id, w.deps.now());
    const cases: [string, RegExp][] = [
      [w.tokens.betaAgent, /^SLURMGATE_AGENT_TOKEN is bound to cluster beta, not SLURMGATE_CLUSTER=alpha; /],
      [w.tokens.alice, /^SLURMGATE_AGENT_TOKEN is a user token, not an agent token; /],
      [w.tokens.admin, /^SLURMGATE_AGENT_TOKEN is an admin token, not an agent token; /],
      [revoked.token, /^the gateway refused SLURMGATE_AGENT_TOKEN \(token revoked or expired\)/],
      ["sga_unknown", /^the gateway refused SLURMGATE_AGENT_TOKEN \(unknown token\)/],
    ];
    for (const [token, message] of cases) {
      const err = await verifyAgentToken(api(token), "alpha", { retry: true, log: quiet }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TokenMismatchError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain("\n");
    }
  });

  it("a daemon waits for an unreachable gateway, then checks; --once gives up at once", async () => {
    const daemon = await setup(3);
    const waits: number[] = [];
    await verifyAgentToken(daemon.api(daemon.w.tokens.alphaAgent), "alpha", {
      retry: true,
      log: quiet,
      sleep: async (ms) => waits.push(ms),
    });
    expect(daemon.calls()).toBe(4);
    expect(waits).toEqual([1_000, 2_000, 4_000]);

    const wrong = await setup(2);
    const refused = await verifyAgentToken(wrong.api(wrong.w.tokens.betaAgent), "alpha", {
      retry: true,
      log: quiet,
      sleep: async () => {},
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TokenMismatchError); // the wait ends in the refusal, not a start

    const once = await setup(1);
    const err = await verifyAgentToken(once.api(once.w.tokens.alphaAgent), "alpha", {
      retry: false,
      log: quiet,
    }).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(TokenMismatchError);
    expect((err as Error).message).toMatch(/^cannot check SLURMGATE_AGENT_TOKEN with the gateway: network: /);
    expect(once.calls()).toBe(1);
  });
});
