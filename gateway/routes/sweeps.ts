/**
 * Sweep handlers. Thin: validation and the role are in the route contracts (sweeps.routes.ts),
 * the use cases in services/sweeps.ts.
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { Deps } from "../deps.ts";
import { cancelSweep, listVisibleSweeps, submitSweep, sweepDetail, sweepResults } from "../services/sweeps.ts";
import { createRouter } from "./common.ts";
import * as routes from "./sweeps.routes.ts";

/** Async lines → an ndjson body that pulls the next line only when the client reads. */
function ndjson(lines: AsyncGenerator<unknown>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    async pull(controller) {
      const next = await lines.next();
      if (next.done) {
        controller.close();
      } else {
        controller.enqueue(encoder.encode(`${JSON.stringify(next.value)}\n`));
      }
    },
    async cancel() {
      await lines.return(undefined);
    },
  });
}

export function sweepsRouter(deps: Deps) {
  const submit: RouteHandler<typeof routes.submitSweep> = async (c) => {
    const { sweep, created } = await submitSweep(deps, c.get("principal"), {
      request: c.req.valid("json"),
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    if (!created) {
      return c.json(sweep, 200);
    }
    c.header("location", `/v1/sweeps/${sweep.id}`);
    return c.json(sweep, 201);
  };

  const list: RouteHandler<typeof routes.listSweeps> = async (c) =>
    c.json(await listVisibleSweeps(deps, c.get("principal"), c.req.valid("query")), 200);

  const get: RouteHandler<typeof routes.getSweep> = async (c) =>
    c.json(await sweepDetail(deps, c.get("principal"), c.req.valid("param").id, c.req.valid("query")), 200);

  const results: RouteHandler<typeof routes.sweepResults> = async (c) => {
    const lines = await sweepResults(deps, c.get("principal"), c.req.valid("param").id);
    return c.body(ndjson(lines), 200, { "content-type": "application/x-ndjson" }) as never;
  };

  const cancel: RouteHandler<typeof routes.cancelSweep> = async (c) =>
    c.json(await cancelSweep(deps, c.get("principal"), c.req.valid("param").id), 202);

  return createRouter()
    .openapi(routes.submitSweep, submit)
    .openapi(routes.listSweeps, list)
    .openapi(routes.getSweep, get)
    .openapi(routes.sweepResults, results)
    .openapi(routes.cancelSweep, cancel);
}
