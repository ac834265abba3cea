/** The submission reports of a cycle, sent in batches while the next sbatch runs. */
import type { AgentContext } from "./context.ts";
import type { Report } from "./gateway-api.ts";
import { submissionReported } from "./job-life.ts";
import type { Reporter } from "./reporter.ts";

/**
 * How long a submission report waits for others to join it, and how many make a request at once.
 * Why: one report per request cost the agent (fetch) and the gateway (a request, its transaction)
 * a few ms of CPU per job, on the same CPUs as sbatch and slurmctld (bench/RESULTS-agent.md). The
 * last reports of a cycle never wait: the cycle drains the outbox as soon as its sbatch calls end.
 */
const OUTBOX_HOLD_MS = 1000;
const OUTBOX_MAX = 100;

/**
 * Sends submission reports while the next sbatch runs, instead of waiting for each round trip:
 * one request in flight, reports gathered for up to OUTBOX_HOLD_MS go together. The Slurm job id
 * is already in the state file before its report is queued, so a lost report only means a later
 * re-report.
 */
export function createOutbox(ctx: AgentContext, reporter: Reporter) {
  let queue: Report[] = [];
  let flushing: Promise<void> | undefined;
  let draining = false;
  let wake: (() => void) | undefined;
  const gather = () =>
    new Promise<void>((resolve) => {
      if (draining || queue.length >= OUTBOX_MAX) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, OUTBOX_HOLD_MS);
      wake = done;
    });
  const flush = async () => {
    try {
      while (queue.length) {
        await gather();
        const batch = queue;
        queue = [];
        if (await reporter.send(batch)) {
          ctx.state.batch(() => {
            for (const report of batch) {
              const job = ctx.state.get(report.jobId);
              if (job) {
                ctx.state.put(submissionReported(job));
              }
            }
          });
        }
      }
    } finally {
      flushing = undefined;
    }
  };
  return {
    push(report: Report) {
      queue.push(report);
      if (queue.length >= OUTBOX_MAX) {
        wake?.();
      }
      if (!flushing) {
        flushing = flush();
        flushing.catch(() => {}); // surfaced by drain(); never an unhandled rejection meanwhile
      }
    },
    async drain() {
      draining = true;
      wake?.();
      while (flushing) {
        await flushing;
      }
    },
  };
}
