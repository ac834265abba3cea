/**
 * Per-token rate limiting: one token's flood does not slow another's, and the bucket refills.
 */
import { expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape } from "./world.ts";

it("limits each token on its own and refills with time", async () => {
  const clock = testClock();
  const w = await createWorld({ SLURMGATE_RATE_LIMIT_PER_SECOND: "2", SLURMGATE_RATE_LIMIT_BURST: "3" }, clock);
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    statuses.push((await w.call("GET", "/v1/me", w.tokens.alice)).status);
  }
  expect(statuses).toEqual([200, 200, 200, 429, 429]);
  const limited = await w.call("GET", "/v1/jobs", w.tokens.alice);
  expect(expectProblemShape(limited, 429).code).toBe("rate_limited");
  expect(limited.headers.get("retry-after")).toBe("1");
  expect((await w.call("GET", "/v1/me", w.tokens.bob)).status).toBe(200);
  clock.advance(1_000);
  expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
  expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
  expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(429);
});

it("limits failed authentications per address", async () => {
  const w = await createWorld({ SLURMGATE_RATE_LIMIT_PER_SECOND: "1", SLURMGATE_RATE_LIMIT_BURST: "2" });
  const headers = { authorization: "Bearer sgu_guessing", "x-forwarded-for": "203.0.113.9" };
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    statuses.push((await w.call("GET", "/v1/me", undefined, undefined, headers)).status);
  }
  expect(statuses).toEqual([401, 401, 429, 429]);
  expect((await w.call("GET", "/v1/me", w.tokens.alice)).status).toBe(200);
});
