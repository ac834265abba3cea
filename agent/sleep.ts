/**
 * The agent's wait between cycles and retries: resolves after `ms`, or at once when `signal`
 * aborts (a stop must not wait out a backoff). Never rejects; leaves no listener behind either way,
 * since one signal lives as long as the agent and sees thousands of sleeps.
 * @example await sleep(1_000, stopController.signal);
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) {
      resolve(); // an abort that came first fires no event: the stop would wait out the whole backoff
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
