import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { collectFiles } from "../../gateway/files/retention.ts";
import { testClock } from "../helpers/gateway.ts";
import { createWorld, type World } from "./world.ts";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const HOUR = 3_600_000;

async function upload(w: World, token: string, text: string): Promise<string> {
  const res = await w.app.request("/v1/files", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
    body: text,
  });
  return ((await res.json()) as { file: string }).file;
}

describe("file retention", () => {
  it("deletes blobs no live job and no recent upload refers to, and keeps the rest", async () => {
    const clock = testClock();
    const w = await createWorld({ SLURMGATE_FILES_RETENTION_SECONDS: "3600" }, clock);
    await upload(w, w.tokens.alice, "old and unused");
    const used = await upload(w, w.tokens.alice, "old but a live job's input");
    const ended = await upload(w, w.tokens.alice, "old, its job ended");
    const job = await w.submit(w.tokens.alice, { inputs: [{ file: used, path: "in" }] });
    const done = await w.submit(w.tokens.alice, { inputs: [{ file: ended, path: "in" }] });
    await w.call("POST", `/v1/jobs/${done.id}/cancel`, w.tokens.alice);
    clock.advance(2 * HOUR);
    await upload(w, w.tokens.alice, "recent");
    // Refreshed by a second upload of the same bytes (by someone else): recent again.
    await upload(w, w.tokens.bob, "old and unused");

    expect(await collectFiles(w.deps)).toEqual({ uploads: 2, blobs: 1 });
    expect(await w.deps.blobs.head(sha("old, its job ended"))).toBeNull();
    for (const kept of ["old and unused", "old but a live job's input", "recent"]) {
      expect(await w.deps.blobs.head(sha(kept))).not.toBeNull();
    }
    // Alice's claim on the old unused file lapsed (her quota returns); Bob's is fresh.
    expect((await w.call("GET", `/v1/files/sha256:${sha("old and unused")}`, w.tokens.alice)).status).toBe(404);
    expect((await w.call("GET", `/v1/files/sha256:${sha("old and unused")}`, w.tokens.bob)).status).toBe(200);

    // Once the live job ends and time passes, its input goes too.
    await w.call("POST", `/v1/jobs/${job.id}/cancel`, w.tokens.alice);
    clock.advance(2 * HOUR);
    await collectFiles(w.deps);
    expect(await w.deps.blobs.head(sha("old but a live job's input"))).toBeNull();
    expect(await w.deps.blobs.head(sha("recent"))).toBeNull();
    expect(await collectFiles(w.deps)).toEqual({ uploads: 0, blobs: 0 });
  });
});
