/**
 * The SSH executor's parts that need no server: the host-key pin, the reconnect backoff, the
 * channel limiter, the remote pid announcement, and the output cap both executors share.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { outputCap } from "../../agent/executor/limits.ts";
import { reconnectDelayMs } from "../../agent/executor/ssh/connection.ts";
import { limiter, takePidMarker } from "../../agent/executor/ssh/exec.ts";
import {
  HostKeyMismatchError,
  fingerprintOf,
  hostKeyPin,
  parsePinnedHostKey,
} from "../../agent/executor/ssh/host-key.ts";

describe("the host-key pin", () => {
  const keyA = Buffer.from("ssh-ed25519 key A");
  const keyB = Buffer.from("ssh-ed25519 key B");

  it("accepts a pinned key and refuses any other, naming both in the error", () => {
    const pin = hostKeyPin(parsePinnedHostKey(fingerprintOf(keyA)));
    expect(pin.verify(keyA)).toBe(true);
    expect(pin.refused()).toBeNull();
    expect(pin.verify(keyB)).toBe(false);
    expect(pin.refused()).toBe(fingerprintOf(keyB));
    const err = pin.mismatch("login1:22");
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect(err.message).toContain(`the server offered ${fingerprintOf(keyB)}`);
    expect(err.message).toContain(`pins ${fingerprintOf(keyA)}`);
    expect(err.message).toContain("refusing to connect");
  });

  it("accepts either key of a rotation, written with base64 padding", () => {
    const pin = hostKeyPin(parsePinnedHostKey(`${fingerprintOf(keyA)}=, ${fingerprintOf(keyB)}`));
    expect(pin.verify(keyA)).toBe(true);
    expect(pin.verify(keyB)).toBe(true);
  });

  it("refuses a fingerprint that differs only in letter case, an empty key, and a pin of nothing", () => {
    const pinned = fingerprintOf(keyA);
    const flipped = `SHA256:${[...pinned.slice(7)].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join("")}`;
    expect(flipped).not.toBe(pinned);
    // Base64 is case-sensitive: a pin in the wrong case is another key, not the same one.
    const pin = hostKeyPin(parsePinnedHostKey(flipped));
    expect(pin.verify(keyA)).toBe(false);
    expect(pin.verify(Buffer.alloc(0))).toBe(false);
    expect(hostKeyPin([]).verify(keyA)).toBe(false);
    expect(() => parsePinnedHostKey(" , ")).toThrow(/SLURMGATE_SSH_HOST_KEY is required/);
    expect(() => parsePinnedHostKey(`${pinned}\n`)).not.toThrow();
    expect(() => parsePinnedHostKey(`${pinned.slice(0, -1)}`)).toThrow(/SHA256:<base64>/);
  });
});

describe("reconnectDelayMs", () => {
  it.each([
    [1, 500],
    [2, 1_000],
    [3, 2_000],
    [7, 30_000],
    [1_000, 30_000],
  ])("after %i failures waits %i ms (no jitter)", (failures, ms) => {
    expect(reconnectDelayMs(failures, 500, 30_000, () => 0.5)).toBe(ms);
  });

  it("jitters by ±25 % and never overflows", () => {
    expect(reconnectDelayMs(2, 500, 30_000, () => 0)).toBe(750);
    expect(reconnectDelayMs(2, 500, 30_000, () => 0.999_999)).toBeLessThan(1_250);
    expect(Number.isFinite(reconnectDelayMs(Number.MAX_SAFE_INTEGER, 500, 30_000))).toBe(true);
  });
});

describe("limiter", () => {
  it("runs at most max at once, the rest in order, and frees a slot when a call throws", async () => {
    const run = limiter(2);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    const task = (i: number) =>
      run(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        order.push(i);
        if (i % 3 === 0) {
          throw new Error(`task ${i}`);
        }
        return i;
      });
    const results = await Promise.allSettled(Array.from({ length: 9 }, (_, i) => task(i)));
    expect(peak).toBe(2);
    expect(results.filter((r) => r.status === "rejected")).toHaveLength(3);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await run(async () => "free")).toBe("free");
  });
});

describe("takePidMarker", () => {
  const marker = "slurmgate-pid-0123456789abcdef";

  it("finds the announcement at the start or after login-shell noise, and removes only that line", () => {
    expect(takePidMarker(Buffer.from(`${marker}:4242\nerr\n`), marker)).toEqual({
      pid: 4242,
      rest: Buffer.from("err\n"),
    });
    const noisy = Buffer.concat([Buffer.from("bashrc: é\n"), Buffer.from(`${marker}:7\n`), Buffer.from([0xff, 0x0a])]);
    expect(takePidMarker(noisy, marker)).toEqual({
      pid: 7,
      rest: Buffer.from([...Buffer.from("bashrc: é\n"), 0xff, 0x0a]),
    });
  });

  it("ignores a partial line, the marker mid-line, and another marker", () => {
    for (const text of [
      `${marker}:42`,
      `x${marker}:42\n`,
      `${marker}:\n`,
      `${marker}:4x2\n`,
      "slurmgate-pid-ffff:1\n",
    ]) {
      expect(takePidMarker(Buffer.from(text), marker)).toEqual({ pid: null, rest: Buffer.from(text) });
    }
  });
});

describe("outputCap", () => {
  it("keeps exactly the first max bytes however the stream is chunked", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 20 }), fc.nat(300), (chunks, max) => {
        const cap = outputCap(max);
        for (const chunk of chunks) {
          cap.push(Buffer.from(chunk));
        }
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        expect(cap.bytes().equals(all.subarray(0, max))).toBe(true);
      }),
    );
  });

  it("keeps nothing with a cap of 0", () => {
    const cap = outputCap(0);
    cap.push(Buffer.from("x"));
    expect(cap.bytes().length).toBe(0);
  });
});
