/**
 * The real `slurmgate` binary on the small faults a new user meets first: an sbatch option given
 * as the help shows it, a URL without its scheme, the wording of token kinds, and `--json` errors.
 */
import { mkdtempSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedWorld, type World } from "../client/support/world.ts";
import { createTestGateway } from "../helpers/gateway.ts";
import { runCli } from "./support.ts";

// Each case spawns the CLI (Node + tsx) a few times: generous on a loaded 2-core machine.
const SLOW = 120_000;

let server: ReturnType<typeof serve>;
let gw: { url: string; adminToken: string };
let world: World;
let user: Record<string, string>;
let admin: Record<string, string>;

beforeAll(async () => {
  // A real gateway over HTTP, in this process: a second process takes >30 s to start under load.
  const test = await createTestGateway();
  server = serve({ fetch: test.app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  gw = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, adminToken: await test.user("root", true) };
  world = await seedWorld(gw.url, gw.adminToken);
  const home = mkdtempSync(join(tmpdir(), "slurmgate-faults-"));
  user = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: home, HOME: home };
  admin = { ...user, SLURMGATE_TOKEN: gw.adminToken };
});
afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

const oneLine = (stderr: string) => {
  expect(stderr.endsWith("\n")).toBe(true);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  return stderr.trimEnd();
};

/** stderr is exactly one JSON object (one line) with an `error`; returns it. */
const jsonError = (stderr: string) => {
  const line = oneLine(stderr);
  const parsed = JSON.parse(line) as { error: Record<string, unknown> };
  expect(Object.keys(parsed)).toEqual(["error"]);
  expect(parsed.error.message).toEqual(expect.any(String));
  return parsed.error;
};

describe("--sbatch-arg with a value that starts with --", () => {
  it(
    "takes the help's own form, repeated, and leaves the job's command after -- alone",
    async () => {
      const run = await runCli(
        ["submit", "--print-spec", "--sbatch-arg", "--constraint=ib", "--sbatch-arg", "--exclusive", "-n", "x"].concat([
          "--",
          "echo",
          "--sbatch-arg",
          "--json",
        ]),
        { env: user },
      );
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const spec = JSON.parse(run.stdout);
      expect(spec.extraSbatchArgs).toEqual(["--constraint=ib", "--exclusive"]);
      expect(spec.command).toEqual(["echo", "--sbatch-arg", "--json"]);
    },
    SLOW,
  );

  it(
    "reaches the gateway as given (which refuses an option the cluster does not allow, naming it)",
    async () => {
      const run = await runCli(["submit", "--sbatch-arg", "--constraint=ib", "--", "true"], { env: user });
      expect(run.code).toBe(1);
      expect(oneLine(run.stderr)).toMatch(/'--constraint' is not allowed on hpc1/);
    },
    SLOW,
  );

  it(
    "still says a value is missing when there is none, or only the -- separator",
    async () => {
      for (const argv of [
        ["submit", "--print-spec", "--sbatch-arg"],
        ["submit", "--print-spec", "--sbatch-arg", "--", "true"],
      ]) {
        const run = await runCli(argv, { env: user });
        expect(run.code).toBe(2);
        expect(oneLine(run.stderr)).toMatch(/^slurmgate: .*--sbatch-arg.* \(see: slurmgate submit --help\)$/);
      }
    },
    SLOW,
  );
});

describe("a gateway URL without a scheme", () => {
  it(
    "login says what is wrong and suggests https://",
    async () => {
      const run = await runCli(["login", "--url", "gw.example.org:8080", "--token", "sgu_x"], { env: user });
      expect(run.code).toBe(2);
      expect(oneLine(run.stderr)).toBe(
        'slurmgate: --url needs a scheme; did you mean https://gw.example.org:8080?, got "gw.example.org:8080" (see: slurmgate login --help)',
      );
    },
    SLOW,
  );

  it(
    "other schemes and garbage are refused by name too, and SLURMGATE_URL is checked the same way",
    async () => {
      const ftp = await runCli(["login", "--url", "ftp://gw.example.org", "--token", "sgu_x"], { env: user });
      expect(ftp.code).toBe(2);
      expect(oneLine(ftp.stderr)).toMatch(/--url must start with https:\/\/ .*not ftp:\/\//);
      const bad = await runCli(["login", "--url", "https://[::1", "--token", "sgu_x"], { env: user });
      expect(oneLine(bad.stderr)).toMatch(/--url is not a valid URL/);
      const env = await runCli(["ls"], { env: { ...user, SLURMGATE_URL: "localhost:8080" } });
      expect(env.code).toBe(1);
      expect(oneLine(env.stderr)).toMatch(
        /^slurmgate: SLURMGATE_URL needs a scheme; did you mean https:\/\/localhost:8080\?/,
      );
    },
    SLOW,
  );
});

describe("token kinds in messages", () => {
  it(
    'says "an admin token", never "a admin token"',
    async () => {
      const forbidden = await runCli(["user", "add", "carol"], { env: user });
      expect(forbidden.code).toBe(1);
      expect(oneLine(forbidden.stderr)).toBe(
        "slurmgate: header.authorization: this route needs an admin token; you sent a user token (403 forbidden)",
      );
      const noUser = await runCli(["token", "create", "--kind", "admin"], { env: admin });
      expect(noUser.code).toBe(1);
      expect(oneLine(noUser.stderr)).toMatch(/user: an admin token belongs to a user/);
      const asAgent = await runCli(["user", "list"], { env: { ...user, SLURMGATE_TOKEN: world.agentToken } });
      expect(oneLine(asAgent.stderr)).toContain("needs an admin token; you sent an agent token");
    },
    SLOW,
  );
});

describe("--json errors", () => {
  it(
    "a usage error is one JSON object on stderr, nothing on stdout, exit 2",
    async () => {
      const run = await runCli(["submit", "--json", "--bogus", "--", "true"], { env: user });
      expect(run.code).toBe(2);
      expect(run.stdout).toBe("");
      expect(jsonError(run.stderr)).toMatchObject({
        kind: "usage",
        exit: 2,
        message: expect.stringContaining("--bogus"),
      });
    },
    SLOW,
  );

  it(
    "an API problem keeps its status, code, field and per-field errors",
    async () => {
      const run = await runCli(["submit", "--json", "-n", "bad name", "--", "true"], { env: user });
      expect(run.code).toBe(1);
      expect(run.stdout).toBe("");
      expect(jsonError(run.stderr)).toMatchObject({
        kind: "api",
        exit: 1,
        status: 422,
        code: "validation_failed",
        field: "body.name",
        errors: [expect.objectContaining({ field: "body.name" })],
      });
      const missing = await runCli(["show", "--json", "job_01jd7x2k9m4q8r6t5v3w1y0z"], { env: user });
      expect(jsonError(missing.stderr)).toMatchObject({ kind: "api", status: 404, code: "not_found" });
    },
    SLOW,
  );

  it(
    "a network error and a configuration error are JSON too",
    async () => {
      const port = await new Promise<number>((resolve) => {
        const server = createServer();
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as { port: number };
          server.close(() => resolve(port));
        });
      });
      const down = await runCli(["whoami", "--json"], { env: { ...user, SLURMGATE_URL: `http://127.0.0.1:${port}` } });
      expect(down.code).toBe(1);
      expect(jsonError(down.stderr)).toMatchObject({ kind: "network", exit: 1 });
      const home = mkdtempSync(join(tmpdir(), "slurmgate-nologin-"));
      const none = await runCli(["ls", "--json"], { env: { XDG_CONFIG_HOME: home, HOME: home } });
      expect(none.code).toBe(1);
      expect(jsonError(none.stderr)).toMatchObject({
        kind: "error",
        message: expect.stringContaining("slurmgate login"),
      });
    },
    SLOW,
  );

  it(
    "--json inside a job's command does not switch the error format",
    async () => {
      const run = await runCli(["submit", "--bogus", "--", "echo", "--json"], { env: user });
      expect(run.code).toBe(2);
      expect(oneLine(run.stderr)).toMatch(/^slurmgate: /);
    },
    SLOW,
  );
});
