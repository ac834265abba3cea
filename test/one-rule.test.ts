/**
 * Rules that used to live in several places and now live in one: the release version, which
 * statuses are worth retrying, the gateway's log line format, and the agent's abortable sleep.
 */
import { readFileSync } from "node:fs";
import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { createGatewayApi } from "../agent/gateway-api.ts";
import { AGENT_VERSION } from "../agent/inventory.ts";
import { sleep } from "../agent/sleep.ts";
import { isRetryableStatus } from "../client/errors.ts";
import { jsonLogger } from "../gateway/logger.ts";
import { VERSION } from "../schemas/version.ts";
import { createWorld } from "./gateway/world.ts";

describe("one version", () => {
  it("equals package.json's, and the gateway, its OpenAPI document and the agent report it", async () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    expect(VERSION).toBe(pkg.version);
    expect(AGENT_VERSION).toBe(pkg.version);
    const w = await createWorld();
    expect(await (await w.app.request("/healthz")).json()).toMatchObject({ version: pkg.version });
    const doc = (await (await w.app.request("/openapi.json")).json()) as { info: { version: string } };
    expect(doc.info.version).toBe(pkg.version);
  });
});

describe("one retry rule for the client and the agent", () => {
  const statuses = [400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 501, 502, 503, 504];

  it("the agent's gateway calls call retryable exactly what the client retries", async () => {
    for (const status of statuses) {
      const api = createGatewayApi({
        baseUrl: "http://gateway.test",
        token: "sga_x",
        fetch: async () =>
          new Response(JSON.stringify({ type: "about:blank", title: "t", status, detail: `said ${status}` }), {
            status,
            headers: { "content-type": "application/problem+json" },
          }),
      });
      const answer = await api.me();
      expect(answer.ok).toBe(false);
      expect(answer.ok ? null : [status, answer.retryable]).toEqual([status, isRetryableStatus(status)]);
    }
  });

  it("a gateway fault (500) is not retried unchanged; back-pressure and proxies' restarts are", () => {
    expect(statuses.filter(isRetryableStatus)).toEqual([408, 429, 502, 503, 504]);
  });
});

describe("one gateway logger", () => {
  it("writes one JSON line per entry at or above the level, with time and level", () => {
    const lines: string[] = [];
    const log = jsonLogger("warn", (line) => lines.push(line));
    log({ level: "debug", msg: "hidden" });
    log({ level: "info", msg: "hidden" });
    log({ msg: "no level is info: hidden" });
    log({ level: "warn", msg: "shown", n: 1 });
    log({ level: "error", msg: "also shown" });
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({ level: "warn", msg: "shown", n: 1 });
    expect(Number.isNaN(Date.parse(String(first.time)))).toBe(false);
  });
});

describe("the agent's sleep", () => {
  it("leaves no abort listener behind after hundreds of sleeps on one signal", async () => {
    const controller = new AbortController();
    for (let i = 0; i < 500; i++) {
      await sleep(0, controller.signal);
    }
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("ends at once on abort, and at once when the signal was aborted before", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(60_000, controller.signal);
    setTimeout(() => controller.abort(), 20);
    await pending;
    await sleep(60_000, controller.signal);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});
