import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createWorld, expectProblemShape, type World } from "./world.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");

async function upload(
  w: World,
  token: string,
  bytes: Uint8Array | string | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
  query = "",
) {
  const res = await w.app.request(`/v1/files${query}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", ...headers },
    body: bytes as BodyInit,
    ...(bytes instanceof ReadableStream ? { duplex: "half" } : {}),
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

describe("POST /v1/files", () => {
  it("stores bytes once under their hash, verified when asked, and answers the same ref twice", async () => {
    const w = await createWorld();
    const a = await upload(w, w.tokens.alice, "a,b\n1,2\n");
    expect(a.status).toBe(201);
    expect(a.body).toEqual({ file: `sha256:${sha("a,b\n1,2\n")}`, size: 8 });
    const again = await upload(w, w.tokens.bob, "a,b\n1,2\n", { "x-content-sha256": a.body.file });
    expect(again.body).toEqual(a.body);
    const viaQuery = await upload(w, w.tokens.bob, "a,b\n1,2\n", {}, `?sha256=${sha("a,b\n1,2\n")}`);
    expect(viaQuery.status).toBe(201);
    expect((await w.call("GET", `/v1/files/${a.body.file}`, w.tokens.alice)).body).toEqual(a.body);
    const head = await w.app.request(`/v1/files/${a.body.file}`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${w.tokens.alice}` },
    });
    expect(head.status).toBe(200);
  });

  it("refuses a wrong content type (415), a wrong hash (422) and a malformed hash (422)", async () => {
    const w = await createWorld();
    const json = await w.call("POST", "/v1/files", w.tokens.alice, { not: "bytes" });
    expect(expectProblemShape(json, 415).field).toBe("header.content-type");
    expect(json.headers.get("accept-post")).toBe("application/octet-stream");
    const wrong = await upload(w, w.tokens.alice, "abc", { "x-content-sha256": `sha256:${sha("abd")}` });
    expect((expectProblemShape(wrong, 422) as { detail?: string }).detail).toContain(sha("abc"));
    const bad = await upload(w, w.tokens.alice, "abc", { "x-content-sha256": "md5:123" });
    expect(expectProblemShape(bad, 422).field).toBe("header.x-content-sha256");
    expect((await w.call("GET", `/v1/files/sha256:${sha("abc")}`, w.tokens.alice)).status).toBe(404);
  });

  it("refuses a file over the cap with 413 before reading the body, and while streaming one of unknown size", async () => {
    const w = await createWorld({ SLURMGATE_FILE_MAX_BYTES: "1000" });
    let pulled = 0;
    const endless = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(100));
        },
      });
    const declared = await upload(w, w.tokens.alice, endless(), { "content-length": "5000" });
    expect(expectProblemShape(declared, 413).field).toBe("body");
    const streamed = await upload(w, w.tokens.alice, endless());
    expect((expectProblemShape(streamed, 413) as { detail?: string }).detail).toContain("1000 bytes");
    expect(pulled).toBeLessThan(100);
  });

  it("holds each user to their quota in bytes and files (413 naming the limit); a known upload costs nothing", async () => {
    const w = await createWorld({ SLURMGATE_USER_FILES_BYTES: "10", SLURMGATE_USER_FILES_COUNT: "2" });
    expect((await upload(w, w.tokens.alice, "12345678")).status).toBe(201);
    const over = await upload(w, w.tokens.alice, "abcd");
    expect(expectProblemShape(over, 413).field).toBe("quota.bytes");
    expect((await upload(w, w.tokens.alice, "12345678")).status).toBe(201);
    expect((await upload(w, w.tokens.alice, "a")).status).toBe(201);
    const count = await upload(w, w.tokens.alice, "b");
    expect(expectProblemShape(count, 413).field).toBe("quota.files");
    // Bob's quota is his own.
    expect((await upload(w, w.tokens.bob, "abcd")).status).toBe(201);
    // Forgetting a file returns its quota.
    expect((await w.call("DELETE", `/v1/files/sha256:${sha("12345678")}`, w.tokens.alice)).status).toBe(204);
    expect((await upload(w, w.tokens.alice, "abcd")).status).toBe(201);
  });

  it("keeps nothing visible of an upload whose client vanished mid-body", async () => {
    const w = await createWorld();
    const dying = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("half of it"));
        setTimeout(() => controller.error(new Error("client went away")), 20);
      },
    });
    await upload(w, w.tokens.alice, dying).catch(() => undefined);
    expect((await w.call("GET", `/v1/files/sha256:${sha("half of it")}`, w.tokens.alice)).status).toBe(404);
    expect(await w.deps.blobs.head(sha("half of it"))).toBeNull();
    const rows = await w.db.client.execute("SELECT count(*) AS n FROM uploads");
    expect(Number(rows.rows[0]!.n)).toBe(0);
  });

  it("composes parts into a verified whole, and refuses a wrong whole hash or a part that is not yours", async () => {
    const w = await createWorld();
    const p1 = (await upload(w, w.tokens.alice, "hello ")).body.file;
    const p2 = (await upload(w, w.tokens.alice, "world")).body.file;
    const wrong = await w.call("POST", "/v1/files/compose", w.tokens.alice, {
      parts: [p1, p2],
      sha256: `sha256:${sha("hello there")}`,
    });
    expect(expectProblemShape(wrong, 422).field).toBe("body.sha256");
    expect(await w.deps.blobs.head(sha("hello world"))).toBeNull();
    const bobs = await w.call("POST", "/v1/files/compose", w.tokens.bob, {
      parts: [p1],
      sha256: `sha256:${sha("hello ")}`,
    });
    expect(expectProblemShape(bobs, 422).field).toBe("body.parts.0");
    const whole = await w.call("POST", "/v1/files/compose", w.tokens.alice, {
      parts: [p1, p2],
      sha256: `sha256:${sha("hello world")}`,
    });
    expect(whole.status).toBe(201);
    expect(whole.body).toEqual({ file: `sha256:${sha("hello world")}`, size: 11 });
    const stored = await w.deps.blobs.get(sha("hello world"));
    expect(await new Response(stored!.body).text()).toBe("hello world");
    // The parts were given up for the whole.
    expect((await w.call("GET", `/v1/files/${p1}`, w.tokens.alice)).status).toBe(404);
  });
});

describe("job inputs", () => {
  it("accepts inputs the submitter uploaded; refuses others' files and hostile paths with 422 naming the field", async () => {
    const w = await createWorld();
    const mine = (await upload(w, w.tokens.alice, "data")).body.file;
    const bobs = (await upload(w, w.tokens.bob, "bob's")).body.file;
    const ok = await w.call("POST", "/v1/jobs", w.tokens.alice, {
      name: "in",
      command: ["cat", "data/x"],
      inputs: [{ file: mine, path: "data/x", mode: "0600" }],
    });
    expect(ok.status).toBe(201);
    const notMine = await w.call("POST", "/v1/jobs", w.tokens.alice, {
      name: "in",
      command: ["true"],
      inputs: [
        { file: mine, path: "a" },
        { file: bobs, path: "b" },
      ],
    });
    expect(expectProblemShape(notMine, 422).field).toBe("body.inputs.1.file");
    for (const [path, reason] of [
      ["../x", "'..'"],
      ["/etc/passwd", "relative"],
      ["a\u0000b", "NUL"],
    ] as const) {
      const res = await w.call("POST", "/v1/jobs", w.tokens.alice, {
        name: "in",
        command: ["true"],
        inputs: [{ file: mine, path }],
      });
      const problem = expectProblemShape(res, 422) as { errors?: { field: string; message: string }[] };
      expect(problem.errors?.[0]).toMatchObject({ field: "body.inputs.0.path" });
      expect(problem.errors?.[0]?.message).toContain(reason);
    }
    const twice = await w.call("POST", "/v1/jobs", w.tokens.alice, {
      name: "in",
      command: ["true"],
      inputs: [
        { file: mine, path: "a" },
        { file: mine, path: "a" },
      ],
    });
    expect(expectProblemShape(twice, 422)).toMatchObject({ errors: [{ field: "body.inputs.1.path" }] });
  });

  it("lets only the agent holding the job download its inputs", async () => {
    const w = await createWorld();
    const file = (await upload(w, w.tokens.alice, "input bytes")).body.file;
    const other = (await upload(w, w.tokens.alice, "not an input")).body.file;
    const job = await w.submit(w.tokens.alice, { cluster: "alpha", inputs: [{ file, path: "in.txt" }] });
    const get = (token: string, ref: string, agentId = "agent-1") =>
      w.app.request(`/v1/agent/files/${ref}?agentId=${agentId}`, { headers: { authorization: `Bearer ${token}` } });
    // Not leased yet: no agent holds it.
    expect((await get(w.tokens.alphaAgent, file)).status).toBe(404);
    const lease = await w.lease(w.tokens.alphaAgent);
    expect(lease.body.leases.map((l) => l.jobId)).toContain(job.id);
    const res = await get(w.tokens.alphaAgent, file);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("input bytes");
    expect((await get(w.tokens.alphaAgent, other)).status).toBe(404);
    expect((await get(w.tokens.alphaAgent, file, "agent-2")).status).toBe(404);
    expect((await get(w.tokens.betaAgent, file)).status).toBe(404);
    expect((await get(w.tokens.alice, file)).status).toBe(403);
  });
});
