/**
 * The Node gateway's webhook loop: a delivery pass whenever the notifier announces a job change,
 * and at least every IDLE_MS for retries that come due and for events other processes wrote.
 * `stop()` ends it after the try in flight (bounded by the attempt timeout); the pass releases what it held.
 */
import type { Deps } from "./deps.ts";
import { FEED_TOPIC } from "./notifier.ts";
import { DEFAULT_PASS, type PassLimits, type WebhookTransport, runDeliveryPass } from "./services/webhook-delivery.ts";

const IDLE_MS = 1_000;

/**
 * Shorter passes than the Worker's cron: the loop runs again at once, and a process killed
 * mid-pass holds its webhook only this long (plus two try timeouts) before another may take it.
 */
const LOOP_PASS: PassLimits = { ...DEFAULT_PASS, budgetMs: 10_000 };

export function startWebhookLoop(deps: Deps, transport: WebhookTransport): { stop(): Promise<void> } {
  const stopping = new AbortController();
  const run = (async () => {
    while (!stopping.signal.aborted) {
      // Listen before the pass, so a change made while it runs wakes the next one at once.
      const woken = deps.notifier.wait(FEED_TOPIC, IDLE_MS, stopping.signal);
      try {
        await runDeliveryPass(deps, transport, LOOP_PASS, stopping.signal);
      } catch (error) {
        deps.log({ level: "error", msg: "webhook pass failed", error: String(error) });
      }
      await woken;
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await run;
    },
  };
}
