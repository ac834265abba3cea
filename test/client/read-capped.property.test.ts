/**
 * The one capped body read (client/read-capped.ts) that request bodies, both blob stores and the
 * client's identity-provider reads share: any chunking of any bytes comes back whole under the cap,
 * is refused exactly when the total exceeds it, and a stream that never ends is read barely past it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eachChunkCapped, readCapped, readCappedText } from "../../client/read-capped.ts";

/** `bytes` cut at `cuts` (offsets, any order, repeats give empty chunks), as a pull stream. */
function chunked(bytes: Uint8Array, cuts: number[]): ReadableStream<Uint8Array> {
  const at = [0, ...cuts.map((c) => c % (bytes.length + 1)).sort((a, b) => a - b), bytes.length];
  const chunks = at.slice(1).map((end, i) => bytes.slice(at[i], end));
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next) {
        controller.enqueue(next);
      } else {
        controller.close();
      }
    },
  });
}

const bytesArb = fc.uint8Array({ maxLength: 300 });
const cutsArb = fc.array(fc.nat(), { maxLength: 20 });

describe("readCapped", () => {
  it("any chunking yields the same bytes when the total is at most the cap, and null exactly when it exceeds it", async () => {
    await fc.assert(
      fc.asyncProperty(bytesArb, cutsArb, fc.nat(320), async (bytes, cuts, cap) => {
        const got = await readCapped(chunked(bytes, cuts).getReader(), cap);
        if (bytes.length > cap) {
          expect(got).toBeNull();
        } else {
          expect(got).toEqual(bytes);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("a cap of zero takes an empty body and refuses a single byte", async () => {
    expect(await readCapped(chunked(new Uint8Array(0), [0, 0]).getReader(), 0)).toEqual(new Uint8Array(0));
    expect(await readCapped(chunked(new Uint8Array(1), []).getReader(), 0)).toBeNull();
  });
});

describe("eachChunkCapped on a stream that never ends", () => {
  it("stops at the chunk that crosses the cap: never pulls another, never hands that one on", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(64), { minLength: 1, maxLength: 16 }), fc.nat(2_000), async (sizes, cap) => {
        if (!sizes.some((s) => s > 0)) {
          sizes[0] = 1; // a stream of empty chunks alone never reaches any cap
        }
        let pulls = 0;
        let pulledBytes = 0;
        const endless = new ReadableStream<Uint8Array>(
          {
            pull(controller) {
              const size = sizes[pulls++ % sizes.length]!;
              pulledBytes += size;
              controller.enqueue(new Uint8Array(size).fill(pulls % 251));
            },
          },
          { highWaterMark: 0 }, // pulled only when read: `pulls` counts reads, nothing is buffered ahead
        );
        let handed = 0;
        const reader = endless.getReader();
        const size = await eachChunkCapped(reader, cap, (chunk) => {
          handed += chunk.byteLength;
        });
        await reader.cancel();
        expect(size).toBeNull();
        // Everything pulled but the last chunk was at most the cap, the last one crossed it.
        const last = sizes[(pulls - 1) % sizes.length]!;
        expect(pulledBytes).toBeGreaterThan(cap);
        expect(pulledBytes - last).toBeLessThanOrEqual(cap);
        expect(handed).toBe(pulledBytes - last);
      }),
      { numRuns: 300 },
    );
  });

  it("hands on every chunk in order and answers the total when the stream ends within the cap", async () => {
    await fc.assert(
      fc.asyncProperty(bytesArb, cutsArb, async (bytes, cuts) => {
        const seen: number[] = [];
        const size = await eachChunkCapped(chunked(bytes, cuts).getReader(), bytes.length, (chunk) => {
          seen.push(...chunk);
        });
        expect(size).toBe(bytes.length);
        expect(seen).toEqual([...bytes]);
      }),
      { numRuns: 300 },
    );
  });
});

describe("readCappedText", () => {
  it("decodes a body within the cap, and cancels and refuses one over it", async () => {
    const text = "héllo wörld";
    const size = new TextEncoder().encode(text).length;
    expect(await readCappedText(new Response(text), size)).toBe(text);
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(new Uint8Array(1024)),
      cancel: () => {
        cancelled = true;
      },
    });
    expect(await readCappedText(new Response(endless), 10_000)).toBeNull();
    expect(cancelled).toBe(true);
    expect(await readCappedText(new Response(null), 0)).toBe("");
  });
});
