import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLocalExecutor as localExecutor } from "../../agent/executor/local.ts";
import { createGatewayApi } from "../../agent/gateway-api.ts";
import { InputRefusal, writeInputs } from "../../agent/inputs.ts";
import { PathError } from "../../agent/paths.ts";
import { failedBefore } from "../../agent/submit.ts";
import { createFsBlobStore } from "../../gateway/files/fs-blob-store.ts";
import { createWorld } from "../gateway/world.ts";

const sha = (bytes: string) => createHash("sha256").update(bytes).digest("hex");

/** A real in-process gateway with alice's uploads, a leased job naming them, and the agent's API client. */
async function setup(files: Record<string, string>, paths: Record<string, string> = {}) {
  const w = await createWorld();
  const blobDir = mkdtempSync(join(tmpdir(), "sg-in-blobs-"));
  w.deps.blobs = await createFsBlobStore(blobDir);
  const inputs = [];
  for (const [name, text] of Object.entries(files)) {
    const res = await w.app.request("/v1/files", {
      method: "POST",
      headers: { authorization: `Bearer ${w.tokens.alice}`, "content-type": "application/octet-stream" },
      body: text,
    });
    inputs.push({ file: (await res.json()).file as string, path: paths[name] ?? name });
  }
  const job = await w.submit(w.tokens.alice, { cluster: "alpha", inputs });
  await w.lease(w.tokens.alphaAgent);
  const api = createGatewayApi({
    baseUrl: "http://gateway.test",
    token: w.tokens.alphaAgent,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) =>
      w.app.request(input as Request, init)) as typeof fetch,
  });
  const jobDir = mkdtempSync(join(tmpdir(), "sg-jobdir-"));
  const blobPath = (hex: string) => join(blobDir, hex.slice(0, 2), hex.slice(2, 4), hex);
  return { w, job, inputs, api, jobDir, blobPath, ctx: { api, agentId: "agent-1" } };
}

describe("job inputs on the agent", () => {
  it("writes each input, verified, at its path with its mode", async () => {
    const s = await setup({ "train.csv": "a,b\n1,2\n", "cfg.json": "{}" }, { "train.csv": "data/deep/train.csv" });
    await writeInputs(s.ctx, localExecutor(), s.jobDir, [{ ...s.inputs[0]!, mode: "0600" }, s.inputs[1]!]);
    expect(readFileSync(join(s.jobDir, "data/deep/train.csv"), "utf8")).toBe("a,b\n1,2\n");
    expect(statSync(join(s.jobDir, "data/deep/train.csv")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(s.jobDir, "cfg.json"), "utf8")).toBe("{}");
  });

  it("rejects a job whose stored input was altered on disk (input_corrupt) or is gone (input_missing)", async () => {
    const s = await setup({ "in.txt": "the real bytes" });
    const hex = sha("the real bytes");
    writeFileSync(s.blobPath(hex), "tampered bytes");
    const corrupt = await writeInputs(s.ctx, localExecutor(), s.jobDir, s.inputs).catch((e) => e);
    expect(corrupt).toBeInstanceOf(InputRefusal);
    expect(corrupt.code).toBe("input_corrupt");
    expect(readdirSync(s.jobDir)).toEqual([]);
    const lease = { jobId: s.job.id, epoch: 1, attempt: 1 } as never;
    expect(failedBefore({ config: { SLURMGATE_NO_ROOM_WAIT_SECONDS: 60 } }, lease, corrupt)).toMatchObject({
      kind: "refused",
      report: { state: "rejected", code: "input_corrupt" },
    });
    await s.w.deps.blobs.delete(hex);
    const missing = await writeInputs(s.ctx, localExecutor(), s.jobDir, s.inputs).catch((e) => e);
    expect(missing).toBeInstanceOf(InputRefusal);
    expect(missing.code).toBe("input_missing");
    expect(missing.message).toContain("in.txt");
  });

  it("an agent that does not hold the job cannot fetch its inputs (input_missing)", async () => {
    const s = await setup({ "in.txt": "x" });
    const err = await writeInputs({ api: s.api, agentId: "agent-2" }, localExecutor(), s.jobDir, s.inputs).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(InputRefusal);
  });

  it("never writes through a symlink planted at the target or on the way", async () => {
    const s = await setup({ "in.txt": "input", "data/x": "input 2" });
    const outside = mkdtempSync(join(tmpdir(), "sg-outside-"));
    const victim = join(outside, "victim");
    writeFileSync(victim, "precious");
    symlinkSync(victim, join(s.jobDir, "in.txt"));
    await writeInputs(s.ctx, localExecutor(), s.jobDir, [s.inputs[0]!]);
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(lstatSync(join(s.jobDir, "in.txt")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(s.jobDir, "in.txt"), "utf8")).toBe("input");

    symlinkSync(outside, join(s.jobDir, "data"));
    const err = await writeInputs(s.ctx, localExecutor(), s.jobDir, [s.inputs[1]!]).catch((e) => e);
    expect(err).toBeInstanceOf(PathError);
    expect(readdirSync(outside)).toEqual(["victim"]);
  });

  it("refuses a hostile path even if one got past the gateway", async () => {
    const s = await setup({ "in.txt": "x" });
    for (const path of ["../escape", "/etc/passwd", "a/../../b"]) {
      const err = await writeInputs(s.ctx, localExecutor(), s.jobDir, [{ file: s.inputs[0]!.file, path }]).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(PathError);
    }
    expect(readdirSync(s.jobDir)).toEqual([]);
  });
});
