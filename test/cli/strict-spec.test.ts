/**
 * A job file with several mistakes: the real `slurmgate` against a real gateway prints every fault,
 * one line each, and exits 1; the formatting holds up against what a hostile gateway could send.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JobSpecInput as ClientSpecInput, SlurmgateError } from "../../client/index.ts";
import { formatError } from "../../cli/errors.ts";
import type { JobSpecInput as SchemaSpecInput } from "../../schemas/index.ts";
import { type GatewayProcess, startGatewayProcess } from "../helpers/gateway-process.ts";
import { seedWorld } from "../client/support/world.ts";
import { runCli } from "./support.ts";

// The client's hand-written input type accepts exactly what the schema accepts: `tsc` fails here
// when they drift, so a typed caller cannot be led to send a key the strict gateway refuses.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const specTypesMatch: Same<ClientSpecInput, SchemaSpecInput> = true;
void specTypesMatch;

let gw: GatewayProcess;
let env: Record<string, string>;

beforeAll(async () => {
  gw = await startGatewayProcess();
  const world = await seedWorld(gw.url, gw.adminToken);
  const home = mkdtempSync(join(tmpdir(), "slurmgate-cli-"));
  env = { SLURMGATE_URL: gw.url, SLURMGATE_TOKEN: world.userToken, XDG_CONFIG_HOME: home, HOME: home };
});
afterAll(async () => {
  await gw?.stop();
});

describe("slurmgate submit with a bad job file", () => {
  it("prints every fault, one line each, and exits 1 without submitting", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-job-"));
    const file = join(dir, "train.yaml");
    writeFileSync(
      file,
      [
        "name: train",
        "walltime: 4h",
        "resources: { cpus: 8, mem: 32G }",
        "command: [python, train.py]",
        "script: echo both",
        "",
      ].join("\n"),
    );
    const run = await runCli(["submit", "-f", file], { env });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe("slurmgate: 4 problems in the request (422 validation_failed):");
    expect(lines.slice(1).sort()).toEqual(
      [
        "  command: give exactly one of command (argv) or script",
        "  unknown field resources.cpus; did you mean resources.cpusPerTask?",
        "  unknown field resources.mem; did you mean resources.memPerNode?",
        "  unknown field walltime; did you mean resources.time?",
      ].sort(),
    );
    const list = await runCli(["ls", "--json"], { env });
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  it("keeps a single fault on one line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slurmgate-job-"));
    const file = join(dir, "one.json");
    writeFileSync(file, JSON.stringify({ name: "one", command: ["true"], walltime: "10m" }));
    const run = await runCli(["submit", "-f", file], { env });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "slurmgate: unknown field walltime; did you mean resources.time? (422 validation_failed)\n",
    );
  });
});

describe("formatError on refusals with field errors", () => {
  const refusal = (errors: unknown, detail = "2 problems: …") =>
    new SlurmgateError({
      type: "https://slurmgate.dev/problems/validation_failed",
      title: "Request validation failed",
      status: 422,
      code: "validation_failed",
      detail,
      errors,
    } as never);

  it("strips control characters and line breaks a gateway could put in a message", () => {
    const text = formatError(
      refusal([
        { field: "body.a", message: "bad\u001b[2J\nthing\u0007" },
        { field: "body.b\u001b]0;pwned\u0007", message: "unknown field b" },
      ]),
    );
    expect(text.split("\n")).toEqual([
      "2 problems in the request (422 validation_failed):",
      "  a: bad?[2J; thing?",
      "  unknown field b",
    ]);
  });

  it("says how many faults the gateway left out of its list", () => {
    const errors = Array.from({ length: 100 }, (_, i) => ({ field: `body.k${i}`, message: `unknown field k${i}` }));
    const lines = formatError(refusal(errors, "150 problems: (1) …; and 50 more not listed")).split("\n");
    expect(lines[0]).toBe("150 problems in the request (422 validation_failed):");
    expect(lines).toHaveLength(102);
    expect(lines.at(-1)).toBe("  … and 50 more");
  });

  it("ignores malformed errors[] entries instead of crashing", () => {
    const err = refusal([null, 3, { field: 1 }, { field: "body.x", message: "m" }], "body.x: m");
    expect(err.errors).toEqual([{ field: "body.x", message: "m" }]);
    expect(formatError(err)).toBe("x: m (422 validation_failed)");
    expect(refusal("not a list", "whatever").errors).toEqual([]);
  });
});
