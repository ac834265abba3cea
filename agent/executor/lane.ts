/**
 * A submission lane: commands run inside `inLane(lane, …)` start strictly one after another, in the
 * order they were handed over, so a lane is one sbatch at a time like a bash loop. Every command of
 * a call goes to the lane (an sbatch, and a tag lookup after it), so none of them ever overlaps
 * another of the same lane.
 *
 * Why: an executor that can hold the next command ready behind the running one (the local spawners,
 * agent/executor/spawner.ts) lets the next sbatch start inside bash the moment the one before ends,
 * instead of after a round trip through the agent. Such an executor calls `handedOver` once the
 * command is queued; only then may the caller start on the next. Executors that know nothing of
 * lanes (SSH, a direct spawn) never call it, and the caller waits for each command to end instead:
 * the same order, without the overlap. The lane travels through AsyncLocalStorage so the Slurm
 * command layer in between needs no new parameter.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** One lane: the executor keeps what it needs to keep its commands in order (a bound spawner). */
export class Lane {
  /** Private to the executor that serves this lane. */
  bound: unknown;
}

/** One call in a lane: how the executor tells that its first command is queued, and how it is withdrawn. */
export type LaneCall = {
  lane: Lane;
  /** Called by the executor once the call's first command is queued behind the lane's running one. */
  handedOver(): void;
  /** Set by the executor while the call's first command is queued: withdraws it if it has not started. */
  cancel?: () => void;
  /** True once an executor took the call's first command (later ones go the same way, without hand-over). */
  claimed?: boolean;
};

const current = new AsyncLocalStorage<LaneCall>();

/** The lane call the running code is part of, if any (for executors). */
export function laneCall(): LaneCall | undefined {
  return current.getStore();
}

/**
 * Runs `fn` in `lane`. `handedOver` resolves once its first command is queued in an executor that
 * keeps lane order, or once `fn` ended, whichever comes first; `cancel` withdraws that command if it
 * has not started (it then fails as a command that did not complete: its outcome is resolved by tag).
 */
export function inLane<T>(lane: Lane, fn: () => Promise<T>) {
  let handedOver!: () => void;
  const queued = new Promise<void>((resolve) => (handedOver = resolve));
  const call: LaneCall = { lane, handedOver };
  const result = current.run(call, fn);
  return {
    result,
    handedOver: Promise.race([queued, result.then(noop, noop)]),
    cancel: () => call.cancel?.(),
  };
}

const noop = () => {};
