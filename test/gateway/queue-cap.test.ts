/**
 * The per-user cap on live jobs: a user at the cap gets a 429 naming why, other users are not
 * affected, and finished or cancelled jobs free their place.
 */
import { expect, it } from "vitest";
import { testClock } from "../helpers/gateway.ts";
import { createWorld, expectProblemShape, spec } from "./world.ts";

it("refuses a user's job past SLURMGATE_MAX_QUEUED_PER_USER until one of theirs ends", async () => {
  const clock = testClock();
  const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "3" }, clock);
  const jobs = [await w.submit(w.tokens.alice), await w.submit(w.tokens.alice), await w.submit(w.tokens.alice)];
  const refused = await w.call("POST", "/v1/jobs", w.tokens.alice, spec());
  const problem = expectProblemShape(refused, 429);
  expect(problem).toMatchObject({ code: "rate_limited", field: "body" });
  expect(refused.headers.get("retry-after")).toBe("30");
  expect((await w.call("GET", "/v1/jobs?state=queued", w.tokens.alice)).body).toMatchObject({ items: { length: 3 } });
  // Someone else still gets in.
  await w.submit(w.tokens.bob);
  // Cancelling a queued job frees its place once the count is read again.
  await w.call("POST", `/v1/jobs/${jobs[0]!.id}/cancel`, w.tokens.alice);
  clock.advance(1_100);
  expect((await w.call("POST", "/v1/jobs", w.tokens.alice, spec())).status).toBe(201);
  expect((await w.call("POST", "/v1/jobs", w.tokens.alice, spec())).status).toBe(429);
});
