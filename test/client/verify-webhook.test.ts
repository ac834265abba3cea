/**
 * verifyWebhook: the Standard Webhooks test vector, every way a delivery can be wrong (tampered
 * body, wrong secret, stale or future timestamp, missing or malformed headers), several signatures
 * while a secret rotates, and a property: any change to the body fails.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../client/index.ts";
import { newWebhookSecret, signWebhook } from "../../client/webhooks.ts";

// From the Standard Webhooks specification's reference libraries.
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

const headersOf = (id: string, timestamp: number, signature: string) => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": signature,
});

describe("verifyWebhook", () => {
  it("signs and verifies the specification's test vector", async () => {
    expect(await signWebhook(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
    const result = await verifyWebhook({
      secret: VECTOR.secret,
      headers: new Headers(headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature)),
      body: VECTOR.body,
      now: VECTOR.timestamp + 10,
    });
    expect(result).toEqual({ valid: true, id: VECTOR.id, timestamp: VECTOR.timestamp });
    // Bytes as received verify the same as text.
    const bytes = new TextEncoder().encode(VECTOR.body);
    expect(
      await verifyWebhook({
        secret: VECTOR.secret,
        headers: headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature),
        body: bytes,
        now: VECTOR.timestamp,
      }),
    ).toMatchObject({ valid: true });
  });

  it("refuses a tampered body, a wrong secret, another id, stale and future timestamps", async () => {
    const base = {
      secret: VECTOR.secret,
      headers: headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature),
      body: VECTOR.body,
      now: VECTOR.timestamp,
    };
    expect(await verifyWebhook({ ...base, body: '{"test": 2432232315}' })).toMatchObject({ valid: false });
    expect(await verifyWebhook({ ...base, secret: newWebhookSecret() })).toMatchObject({ valid: false });
    expect(
      await verifyWebhook({ ...base, headers: headersOf("msg_other", VECTOR.timestamp, VECTOR.signature) }),
    ).toMatchObject({ valid: false, reason: "no signature matches" });
    expect(await verifyWebhook({ ...base, now: VECTOR.timestamp + 301 })).toMatchObject({
      valid: false,
      reason: "webhook-timestamp is too old",
    });
    expect(await verifyWebhook({ ...base, now: VECTOR.timestamp - 301 })).toMatchObject({
      valid: false,
      reason: "webhook-timestamp is in the future",
    });
    expect(await verifyWebhook({ ...base, now: VECTOR.timestamp + 3_000, toleranceSeconds: 3_600 })).toMatchObject({
      valid: true,
    });
    // A signature moved to another timestamp does not verify there.
    expect(
      await verifyWebhook({ ...base, headers: headersOf(VECTOR.id, VECTOR.timestamp + 1, VECTOR.signature) }),
    ).toMatchObject({ valid: false });
  });

  it("refuses missing and malformed headers and secrets without throwing", async () => {
    const cases: Record<string, string>[] = [
      {},
      { "webhook-id": VECTOR.id, "webhook-timestamp": String(VECTOR.timestamp) },
      { ...headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature), "webhook-timestamp": "1614265330.5" },
      { ...headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature), "webhook-timestamp": "-1" },
      headersOf(VECTOR.id, VECTOR.timestamp, "v1,!!!not-base64"),
      headersOf(VECTOR.id, VECTOR.timestamp, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
      headersOf(VECTOR.id, VECTOR.timestamp, "v1,"),
      headersOf(VECTOR.id, VECTOR.timestamp, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
      headersOf(VECTOR.id, VECTOR.timestamp, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O"),
    ];
    for (const headers of cases) {
      const result = await verifyWebhook({ secret: VECTOR.secret, headers, body: VECTOR.body, now: VECTOR.timestamp });
      expect(result, JSON.stringify(headers)).toMatchObject({ valid: false });
    }
    for (const secret of ["", "whsec_", "whsec_%%%", "whsec_c2hvcnQ="]) {
      const result = await verifyWebhook({
        secret,
        headers: headersOf(VECTOR.id, VECTOR.timestamp, VECTOR.signature),
        body: VECTOR.body,
        now: VECTOR.timestamp,
      });
      expect(result, secret).toMatchObject({ valid: false });
    }
  });

  it("accepts any of several space-separated signatures (a secret being rotated)", async () => {
    const old = newWebhookSecret();
    const signature = `${await signWebhook(old, VECTOR.id, VECTOR.timestamp, VECTOR.body)} v1a,zzz ${VECTOR.signature}`;
    const headers = { ...headersOf(VECTOR.id, VECTOR.timestamp, signature), "Webhook-Extra": "x" };
    for (const secret of [old, VECTOR.secret]) {
      expect(await verifyWebhook({ secret, headers, body: VECTOR.body, now: VECTOR.timestamp })).toMatchObject({
        valid: true,
      });
    }
    expect(
      await verifyWebhook({ secret: newWebhookSecret(), headers, body: VECTOR.body, now: VECTOR.timestamp }),
    ).toMatchObject({ valid: false });
  });

  it("fails for any change to the body (property)", async () => {
    const secret = newWebhookSecret();
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 0, maxLength: 200, unit: "binary" }),
        fc.string({ minLength: 0, maxLength: 200, unit: "binary" }),
        async (body, other) => {
          fc.pre(body !== other);
          const signature = await signWebhook(secret, "msg_x", 1_700_000_000, body);
          const headers = headersOf("msg_x", 1_700_000_000, signature);
          const good = await verifyWebhook({ secret, headers, body, now: 1_700_000_000 });
          const bad = await verifyWebhook({ secret, headers, body: other, now: 1_700_000_000 });
          return good.valid && !bad.valid;
        },
      ),
      { numRuns: 100 },
    );
  });
});
