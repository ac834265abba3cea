/**
 * The transfer benchmark's guard: a copy whose bytes differ from the source must stop the bench
 * (TransferCorrupt), never turn into a speed; and each round's bytes are new to the store.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TransferCorrupt, verifyCopy, writeDeterministic } from "../../bench/transfer.ts";

const dir = mkdtempSync(join(tmpdir(), "slurmgate-xfer-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("transfer bench", () => {
  it("writes the same bytes for a seed and other bytes for another, and answers their sha256", async () => {
    const a = await writeDeterministic(join(dir, "a"), 3 * 1024 * 1024 + 5, 7);
    const b = await writeDeterministic(join(dir, "b"), 3 * 1024 * 1024 + 5, 7);
    const c = await writeDeterministic(join(dir, "c"), 3 * 1024 * 1024 + 5, 8);
    const bytes = readFileSync(join(dir, "a"));
    expect(bytes.length).toBe(3 * 1024 * 1024 + 5);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(a);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    // Not a repeated block: a content-addressed store must not find any two 1 MiB parts alike.
    expect(bytes.subarray(0, 1024 * 1024).equals(bytes.subarray(1024 * 1024, 2 * 1024 * 1024))).toBe(false);
  });

  it("accepts an exact copy and throws TransferCorrupt for one flipped bit, a truncation or a missing file", async () => {
    const sha = await writeDeterministic(join(dir, "src"), 1024 * 1024, 1);
    const good = readFileSync(join(dir, "src"));
    writeFileSync(join(dir, "same"), good);
    await expect(verifyCopy("cp", join(dir, "same"), sha)).resolves.toBeUndefined();

    const flipped = Buffer.from(good);
    flipped[12_345] = flipped[12_345]! ^ 1;
    writeFileSync(join(dir, "flipped"), flipped);
    await expect(verifyCopy("scp pull", join(dir, "flipped"), sha)).rejects.toThrow(TransferCorrupt);
    await expect(verifyCopy("scp pull", join(dir, "flipped"), sha)).rejects.toThrow(/scp pull: .* no speed reported/);

    writeFileSync(join(dir, "short"), good.subarray(0, good.length - 1));
    await expect(verifyCopy("gateway download", join(dir, "short"), sha)).rejects.toThrow(TransferCorrupt);
    await expect(verifyCopy("gateway download", join(dir, "missing"), sha)).rejects.toThrow(/ENOENT/);
  });
});
