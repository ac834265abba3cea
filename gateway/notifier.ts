/**
 * Wakes long-polls when something they wait for changes.
 *
 * In one Node process a submit wakes a waiting lease call at once. Across processes or Workers
 * isolates nothing is shared, so waiters also re-check on a short interval: the notifier is only a
 * shortcut, never the source of truth (the database is).
 */
export type Notifier = {
  notify(topic: string): void;
  /** Resolves after `ms`, or earlier when `topic` is notified or `signal` aborts. */
  wait(topic: string, ms: number, signal?: AbortSignal): Promise<void>;
};

/** The topic every job change is also announced on: the user feed (`GET /v1/events`) waits on it. */
export const FEED_TOPIC = "events";

/** Wakes whoever follows this job, and the feeds. */
export function notifyJob(notifier: Notifier, id: string): void {
  notifier.notify(`job:${id}`);
  notifier.notify(FEED_TOPIC);
}

export function createNotifier(): Notifier {
  const waiters = new Map<string, Set<() => void>>();
  return {
    notify(topic) {
      const set = waiters.get(topic);
      if (!set) {
        return;
      }
      waiters.delete(topic);
      for (const wake of set) {
        wake();
      }
    },
    wait(topic, ms, signal) {
      return new Promise<void>((resolve) => {
        let set = waiters.get(topic);
        if (!set) {
          set = new Set();
          waiters.set(topic, set);
        }
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          waiters.get(topic)?.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal?.addEventListener("abort", done);
        set.add(done);
      });
    },
  };
}

/**
 * Re-runs `check` until it returns a value or `seconds` pass. Between checks it waits for a
 * notification on `topic` or `recheckMs`, whichever comes first.
 */
export async function longPoll<T>(
  notifier: Notifier,
  topic: string,
  seconds: number,
  check: () => Promise<T | undefined>,
  options: { recheckMs: number; now: () => number; signal?: AbortSignal },
): Promise<T | undefined> {
  const deadline = options.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    const left = deadline - options.now();
    if (left <= 0 || options.signal?.aborted) {
      return undefined;
    }
    await notifier.wait(topic, Math.min(left, options.recheckMs), options.signal);
  }
}
