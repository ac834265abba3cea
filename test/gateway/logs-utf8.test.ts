/**
 * Log reads never split a UTF-8 character: a read that ends inside one stops before it, and the
 * next read from nextOffset returns it whole.
 */
import { describe, expect, it } from "vitest";
import { utf8SafeLength } from "../../gateway/services/job-logs.ts";
import { createWorld } from "./world.ts";

const b64 = (bytes: number[]) => Buffer.from(bytes).toString("base64");

describe("log reads and UTF-8", () => {
  it("finds the last complete character", () => {
    const e = [...Buffer.from("é")];
    const emoji = [...Buffer.from("🎉")];
    expect(utf8SafeLength(Uint8Array.from([0x61, e[0]!]))).toBe(1);
    expect(utf8SafeLength(Uint8Array.from([0x61, ...e]))).toBe(3);
    expect(utf8SafeLength(Uint8Array.from([0x61, ...emoji.slice(0, 3)]))).toBe(1);
    expect(utf8SafeLength(Uint8Array.from([0x61, ...emoji]))).toBe(5);
    expect(utf8SafeLength(Uint8Array.from([0xff, 0xfe]))).toBe(2);
    expect(utf8SafeLength(Uint8Array.from([e[0]!]))).toBe(1);
  });

  it("returns a character split across two shipped chunks whole, on the next read", async () => {
    const w = await createWorld();
    const { id } = await w.submit(w.tokens.alice, { cluster: "alpha" });
    const lease = (await w.lease(w.tokens.alphaAgent, "a1")).body.leases[0]!;
    const [lead, tail] = [...Buffer.from("é")];
    await w.report(
      w.tokens.alphaAgent,
      [
        {
          jobId: id,
          epoch: lease.epoch,
          state: "running",
          slurmJobId: "9",
          logs: [{ stream: "stdout", offset: 0, data: b64([0x61, lead!]) }],
        },
      ],
      "a1",
    );
    const first = await w.call<{ data: string; nextOffset: number }>(
      "GET",
      `/v1/jobs/${id}/logs?stream=stdout`,
      w.tokens.alice,
    );
    expect(first.body).toMatchObject({ data: "a", nextOffset: 1 });
    await w.report(
      w.tokens.alphaAgent,
      [{ jobId: id, epoch: lease.epoch, logs: [{ stream: "stdout", offset: 2, data: b64([tail!, 0x0a]) }] }],
      "a1",
    );
    const second = await w.call<{ data: string; nextOffset: number }>(
      "GET",
      `/v1/jobs/${id}/logs?stream=stdout&offset=1`,
      w.tokens.alice,
    );
    expect(second.body).toMatchObject({ data: "é\n", nextOffset: 4 });
  });
});
