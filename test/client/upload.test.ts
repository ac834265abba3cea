import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SlurmgateError, createClient } from "../../client/index.ts";
import { createWorld } from "../gateway/world.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

/** A client on the real in-process gateway, counting the requests it sends. */
async function setup(env: Record<string, string> = {}) {
  const w = await createWorld(env);
  const sent: string[] = [];
  const client = createClient({
    baseUrl: "http://gateway.test",
    token: w.tokens.alice,
    retry: { attempts: 1 },
    fetch: async (request) => {
      sent.push(`${request.method} ${new URL(request.url).pathname}`);
      return w.app.request(request);
    },
  });
  return { w, client, sent };
}

describe("client.upload", () => {
  it("uploads a file path as one request and answers an input ready for a spec", async () => {
    const { w, client, sent } = await setup();
    const dir = mkdtempSync(join(tmpdir(), "sg-up-"));
    writeFileSync(join(dir, "train.csv"), "a,b\n1,2\n");
    const input = await client.upload(join(dir, "train.csv"));
    expect(input).toEqual({ file: `sha256:${sha("a,b\n1,2\n")}`, path: "train.csv" });
    expect(sent).toEqual(["POST /v1/files"]);
    const job = await client.submit({ name: "t", command: ["cat", "train.csv"], inputs: [input] });
    expect(job.state).toBe("queued");
    expect((await client.upload(new TextEncoder().encode("bytes"), { path: "in/b" })).path).toBe("in/b");
    expect(await client.upload(new Blob(["blob"]))).toEqual({ file: `sha256:${sha("blob")}` });
    void w;
  });

  it("sends a large file in parts, composes it, and on a re-run sends only the parts not yet there", async () => {
    const { w, client, sent } = await setup();
    const bytes = randomBytes(3500);
    // An earlier, interrupted run got the first part through.
    await client.upload(bytes.subarray(0, 1000));
    sent.length = 0;
    const up = await client.upload(bytes, { chunkBytes: 1000 });
    expect(up).toEqual({ file: `sha256:${sha(bytes)}` });
    expect(sent.filter((s) => s === "POST /v1/files")).toHaveLength(3);
    expect(sent.filter((s) => s.startsWith("HEAD"))).toHaveLength(4);
    expect(sent.at(-1)).toBe("POST /v1/files/compose");
    const stored = await w.deps.blobs.get(sha(bytes));
    expect(Buffer.from(await new Response(stored!.body).arrayBuffer()).equals(bytes)).toBe(true);
  });

  it("throws a typed error naming the limit when the gateway refuses", async () => {
    const { client } = await setup({ SLURMGATE_FILE_MAX_BYTES: "10" });
    const err = await client.upload(new TextEncoder().encode("x".repeat(11))).catch((e) => e);
    expect(err).toBeInstanceOf(SlurmgateError);
    expect(err.status).toBe(413);
    const quota = await setup({ SLURMGATE_USER_FILES_COUNT: "1" });
    await quota.client.upload(new TextEncoder().encode("one"));
    const over = await quota.client.upload(new TextEncoder().encode("two")).catch((e) => e);
    expect(over).toMatchObject({ status: 413, field: "quota.files" });
  });
});
