/**
 * `slurmgate cp --attempt N` through the real CLI process against a real gateway over HTTP: the
 * newest attempt's outputs by default, an earlier one by number, and a bad or unknown attempt as a
 * non-zero exit with one readable line.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type World, createWorld } from "../gateway/world.ts";
import { retriedOutputs } from "../helpers/retried-outputs.ts";
import { runCli } from "./support.ts";

let server: ReturnType<typeof serve>;
let w: World;
let env: Record<string, string>;
let id: string;
const first = Buffer.from('{"try":1}');
const second = Buffer.from('{"try":2}');

beforeAll(async () => {
  w = await createWorld();
  id = await retriedOutputs(w, first, second);
  server = serve({ fetch: w.app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const home = mkdtempSync(join(tmpdir(), "sg-cli-cp-"));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  env = { SLURMGATE_URL: url, SLURMGATE_TOKEN: w.tokens.alice, XDG_CONFIG_HOME: home, HOME: home };
}, 60_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe("slurmgate cp --attempt", () => {
  it("copies the newest attempt's file by default and an earlier attempt's with --attempt", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-cli-cp-out-"));
    const newest = await runCli(["cp", `${id}:results/m.json`, join(dir, "new.json")], { env });
    expect(newest.code, newest.stderr).toBe(0);
    expect(readFileSync(join(dir, "new.json")).equals(second)).toBe(true);
    const one = await runCli(["cp", "--attempt", "1", `${id}:results/m.json`, join(dir, "one.json")], { env });
    expect(one.code, one.stderr).toBe(0);
    expect(readFileSync(join(dir, "one.json")).equals(first)).toBe(true);
  }, 60_000);

  it("a bad or unknown attempt exits non-zero with one line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-cli-cp-out-"));
    for (const [attempt, want] of [
      ["abc", "--attempt wants a whole number"],
      ["0", "query.attempt"],
      ["9", "no attempt 9"],
    ] as const) {
      const res = await runCli(["cp", "--attempt", attempt, `${id}:results/m.json`, join(dir, "x.json")], { env });
      expect(res.code, attempt).not.toBe(0);
      expect(res.stderr, attempt).toContain(want);
      expect(res.stderr.trim().split("\n"), attempt).toHaveLength(1);
    }
  }, 60_000);
});
