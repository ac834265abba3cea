import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BlobHashMismatch, BlobTooLarge } from "../../gateway/files/blob-store.ts";
import { createFsBlobStore } from "../../gateway/files/fs-blob-store.ts";
import { JobInputs, jobPathFault } from "../../schemas/files.ts";

const sha = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const streamOf = (...chunks: (Uint8Array | string)[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) {
        controller.enqueue(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
      }
      controller.close();
    },
  });
const text = async (body: ReadableStream<Uint8Array>) => new Response(body).text();

/** Every file under dir except the temp directory's (empty) self. */
function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe("fs blob store", () => {
  it("stores by hash, dedups, reads whole and by range, deletes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-blob-"));
    const store = await createFsBlobStore(dir);
    const a = await store.put(streamOf("hello ", "world"), { maxBytes: 100 });
    expect(a).toEqual({ sha256: sha("hello world"), size: 11 });
    const b = await store.put(streamOf("hello world"), { maxBytes: 100, expectedSha256: a.sha256 });
    expect(b).toEqual(a);
    expect(filesUnder(dir)).toHaveLength(1);
    expect(await store.head(a.sha256)).toEqual({ size: 11 });
    const whole = await store.get(a.sha256);
    expect(whole && (await text(whole.body))).toBe("hello world");
    const part = await store.get(a.sha256, { start: 6 });
    expect(part && { size: part.size, text: await text(part.body) }).toEqual({ size: 11, text: "world" });
    const middle = await store.get(a.sha256, { start: 2, end: 4 });
    expect(middle && (await text(middle.body))).toBe("llo");
    await store.delete(a.sha256);
    expect(await store.head(a.sha256)).toBeNull();
    expect(await store.get(a.sha256)).toBeNull();
    await store.delete(a.sha256);
  });

  it("refuses an oversized body as soon as it passes the cap, without reading the rest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-blob-"));
    const store = await createFsBlobStore(dir);
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    await expect(store.put(endless, { maxBytes: 10_000 })).rejects.toBeInstanceOf(BlobTooLarge);
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(20);
    expect(filesUnder(dir)).toEqual([]);
  });

  it("keeps nothing of a body whose hash differs or whose sender vanished", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-blob-"));
    const store = await createFsBlobStore(dir);
    await expect(store.put(streamOf("abc"), { maxBytes: 100, expectedSha256: sha("abd") })).rejects.toBeInstanceOf(
      BlobHashMismatch,
    );
    const dying = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("partial"));
        setTimeout(() => controller.error(new Error("connection reset")), 10);
      },
    });
    await expect(store.put(dying, { maxBytes: 100 })).rejects.toThrow("connection reset");
    expect(filesUnder(dir)).toEqual([]);
    expect(await store.head(sha("partial"))).toBeNull();
  });

  it("refuses a key that is not a sha-256 (no path tricks through the store)", async () => {
    const store = await createFsBlobStore(mkdtempSync(join(tmpdir(), "sg-blob-")));
    await expect(store.head("../../etc/passwd")).rejects.toThrow("not a sha-256");
  });
});

describe("job paths", () => {
  it("accepts plain relative paths", () => {
    expect(jobPathFault("data/train.csv")).toBeUndefined();
    expect(jobPathFault("a b/ünï.txt")).toBeUndefined();
  });
  it.each([
    ["../x", "'..'"],
    ["a/../../x", "'..'"],
    ["/etc/passwd", "relative"],
    ["a\u0000b", "NUL"],
    ["a\nb", "control"],
    ["a//b", "empty"],
    ["./a", "'.'"],
    ["a\\..\\b", "backslash"],
    ["", "empty"],
    ["x".repeat(1025), "1024"],
    ["y".repeat(256), "255"],
    [Array(33).fill("d").join("/"), "32"],
  ])("refuses %j", (path, reason) => {
    expect(jobPathFault(path)).toContain(reason);
  });
  it("refuses two inputs at one path and an input inside another", () => {
    const file = `sha256:${"a".repeat(64)}`;
    const same = JobInputs.safeParse([
      { file, path: "a" },
      { file, path: "a" },
    ]);
    expect(same.success ? [] : same.error.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["1.path", "same path as inputs[0]"],
    ]);
    const nested = JobInputs.safeParse([
      { file, path: "a/b" },
      { file, path: "a" },
    ]);
    expect(nested.success ? [] : nested.error.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["0.path", "is inside inputs[1], a file"],
    ]);
  });
});
