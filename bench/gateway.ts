/**
 * The gateway section of `npm run bench`: submit throughput, a 10,000-element sweep, list latency at 100k jobs, lease and
 * report latency. Each figure sits next to its raw floor measured in the same run.
 */
import { runLease } from "./gateway-lease.ts";
import { runList } from "./gateway-list.ts";
import { runSubmit } from "./gateway-submit.ts";
import { runSweep } from "./gateway-sweep.ts";
import type { BenchOptions, Row } from "./types.ts";

export async function run(opts: BenchOptions): Promise<Row[]> {
  return [...(await runSubmit(opts)), ...(await runSweep(opts)), ...(await runList(opts)), ...(await runLease(opts))];
}
