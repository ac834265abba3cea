/**
 * Job change to client: the time from an agent's state report to the event arriving on an open
 * feed stream (SSE), next to the same report answered to a waiting long-poll, measured alternately
 * in one run against one gateway process. Then 1,000 streams held open at once: the gateway
 * process's memory per stream and the time until one event reached all of them.
 */
import { readFileSync } from "node:fs";
import { readEventStream } from "../client/sse.ts";
import { seedWorld } from "../test/client/support/world.ts";
import { startGatewayProcess } from "../test/helpers/gateway-process.ts";
import { type BenchOptions, type Row, percentile } from "./types.ts";

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);

export async function runEvents(opts: BenchOptions): Promise<Row[]> {
  const n = opts.quick ? 50 : 300;
  const streams = opts.quick ? 200 : 1_000;
  const gw = await startGatewayProcess({
    SLURMGATE_SSE_MAX_PER_USER: String(streams + 10),
    SLURMGATE_MAX_QUEUED_PER_USER: "100000",
    // One token opens every stream at once: past the default burst of 200 it would get 429s.
    SLURMGATE_RATE_LIMIT_PER_SECOND: "0",
  });
  try {
    const world = await seedWorld(gw.url, gw.adminToken, "bench");
    const auth = { authorization: `Bearer ${world.userToken}` };
    opts.log(`events: ${n} jobs, reports timed to an SSE stream and to a long-poll`);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push((await world.user.submit({ name: "ev", command: ["true"] })).id);
    }
    while ((await world.agent.lease(0)).length > 0) {
      // lease everything queued
    }

    const controller = new AbortController();
    const res = await fetch(`${gw.url}/v1/events`, {
      headers: { ...auth, accept: "text/event-stream" },
      signal: controller.signal,
    });
    const messages = readEventStream(res.body!);
    const nextFor = async (jobId: string) => {
      for (;;) {
        const { value, done } = await messages.next();
        if (done) {
          throw new Error("feed ended");
        }
        if (value.comment === undefined && JSON.parse(value.data).jobId === jobId) {
          return;
        }
      }
    };
    let cursor = (await (await fetch(`${gw.url}/v1/events`, { headers: auth })).json()).cursor as string;
    const sse: number[] = [];
    const poll: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      // SSE: the stream is already open; time report → event.
      let t = performance.now();
      const seen = nextFor(id);
      await world.agent.report(id, { state: "submitted", slurmJobId: String(i + 1) });
      await seen;
      sse.push(performance.now() - t);
      // Long-poll: a waiter already parked; time report → answer.
      const { events, cursor: next } = await (
        await fetch(`${gw.url}/v1/events?after=${cursor}`, { headers: auth })
      ).json();
      cursor = events.length ? next : cursor;
      const waiting = fetch(`${gw.url}/v1/events?after=${cursor}&wait=25`, { headers: auth }).then((r) => r.json());
      await new Promise((r) => setTimeout(r, 5));
      t = performance.now();
      await world.agent.report(id, { state: "running" });
      const answer = await waiting;
      poll.push(performance.now() - t);
      cursor = answer.cursor;
      await nextFor(id); // the stream's copy of the running event, so the next SSE sample starts clean
    }
    controller.abort();

    opts.log(`events: ${streams} streams held open at once`);
    const pid = gw.pid;
    const before = rssKiB(pid);
    const many = await Promise.all(
      Array.from({ length: streams }, async () => {
        const c = new AbortController();
        const r = await fetch(`${gw.url}/v1/events`, {
          headers: { ...auth, accept: "text/event-stream" },
          signal: c.signal,
        });
        if (r.status !== 200 || !/text\/event-stream/.test(r.headers.get("content-type") ?? "")) {
          throw new Error(`stream refused: ${r.status} ${await r.text()}`);
        }
        return { c, messages: readEventStream(r.body!) };
      }),
    );
    await new Promise((r) => setTimeout(r, 1_000));
    const held = rssKiB(pid);
    const t = performance.now();
    const job = await world.user.submit({ name: "fanout", command: ["true"] });
    await Promise.all(
      many.map(async ({ messages: m }) => {
        for (;;) {
          const { value, done } = await m.next();
          if (done) {
            throw new Error("a stream ended before the event reached it");
          }
          if (value.comment === undefined && JSON.parse(value.data).jobId === job.id) {
            return;
          }
        }
      }),
    );
    const fanout = performance.now() - t;
    for (const { c } of many) {
      c.abort();
    }
    const perStreamKiB = (held - before) / streams;
    return [
      {
        section: "events",
        metric: "state report → event on an open SSE stream",
        ours: percentile(sse, 50),
        floor: percentile(poll, 50),
        unit: "ms p50",
        ratio: percentile(sse, 50) / percentile(poll, 50),
        p50: percentile(sse, 50),
        p99: percentile(sse, 99),
        n,
        target: `floor: the same report answered to a parked long-poll (p99 ${percentile(poll, 99).toFixed(1)} ms)`,
      },
      {
        section: "events",
        metric: `${streams} streams open: gateway memory per stream`,
        ours: perStreamKiB,
        floor: null,
        unit: "KiB",
        ratio: null,
        n: streams,
        target: `RSS ${Math.round(before / 1024)} → ${Math.round(held / 1024)} MiB; one event reached all in ${fanout.toFixed(0)} ms`,
      },
    ];
  } finally {
    await gw.stop();
  }
}
