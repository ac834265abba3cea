/**
 * The webhook transport on Node: resolves the host once, refuses it when any address it resolves
 * to is private (unless allowed), and connects to exactly the address it checked (a `lookup` that
 * answers with it), so a DNS answer that changes between the check and the connection (rebinding)
 * cannot move the request. TLS still verifies the certificate against the URL's host name. No
 * redirects are followed (node:http never does), each try has one deadline from connect to answer,
 * and at most WEBHOOK_RESPONSE_CAP_BYTES of the answer is read.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { WEBHOOK_RESPONSE_CAP_BYTES } from "../schemas/index.ts";
import type { AttemptResult, WebhookTransport } from "./services/webhook-delivery.ts";
import { addressFault, isIpLiteral } from "./webhook-target.ts";

export type Resolve = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolve: Resolve = (host) => dnsLookup(host, { all: true, verbatim: true });

/** @param resolve the resolver (tests give one that answers a private address for a public-looking name). */
export function nodeTransport(resolve: Resolve = systemResolve): WebhookTransport {
  return async (target, message, timeoutMs) => {
    const url = new URL(target.url);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const deadline = AbortSignal.timeout(timeoutMs);
    let addresses: { address: string; family: number }[];
    try {
      addresses = isIpLiteral(url.hostname)
        ? [{ address: host, family: host.includes(":") ? 6 : 4 }]
        : await resolve(host);
    } catch (error) {
      return { status: null, error: `cannot resolve ${host}: ${(error as Error).message}` };
    }
    if (!target.allowPrivate) {
      for (const { address } of addresses) {
        const fault = addressFault(address);
        if (fault) {
          return { status: null, error: `refused: ${host} resolves to ${address}, ${fault}` };
        }
      }
    }
    const chosen = addresses[0];
    if (!chosen) {
      return { status: null, error: `${host} resolves to no address` };
    }
    const pinned: LookupFunction = (_name, options, callback) => {
      if ((options as { all?: boolean }).all) {
        (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [chosen]);
      } else {
        callback(null, chosen.address, chosen.family);
      }
    };
    return send(url, message, pinned, deadline, timeoutMs);
  };
}

function send(
  url: URL,
  message: { headers: Record<string, string>; body: string },
  lookup: LookupFunction,
  deadline: AbortSignal,
  timeoutMs: number,
): Promise<AttemptResult> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  const body = Buffer.from(message.body);
  return new Promise<AttemptResult>((resolve) => {
    const req = request(url, {
      method: "POST",
      headers: { ...message.headers, "content-length": String(body.length) },
      lookup,
      agent: false,
      signal: deadline,
    });
    req.on("error", (error) => {
      const timedOut = deadline.aborted;
      resolve({ status: null, error: timedOut ? `no answer within ${timeoutMs} ms` : error.message });
    });
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        // The status is the answer; a success's body is never read.
        resolve({ status, excerpt: "" });
        res.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        res.destroy();
        resolve({ status, excerpt: Buffer.concat(chunks).toString("utf8").slice(0, 200) });
      };
      res.on("data", (chunk: Buffer) => {
        if (size < WEBHOOK_RESPONSE_CAP_BYTES) {
          chunks.push(chunk.subarray(0, WEBHOOK_RESPONSE_CAP_BYTES - size));
        }
        size += chunk.length;
        if (size >= WEBHOOK_RESPONSE_CAP_BYTES) {
          finish();
        }
      });
      res.on("end", finish);
      res.on("error", finish);
    });
    req.end(body);
  });
}
