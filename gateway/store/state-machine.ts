/**
 * Which state changes an agent may report. Terminal states never change; states never go back
 * except running → pending (Slurm requeue) and leased → queued (back-pressure requeue).
 */
import type { JobState, LiveState } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";

/** How far along a live job is; typed over LIVE_STATES, so a new live state does not compile until ranked here. */
const RANK: Record<LiveState, number> = { queued: 0, leased: 1, submitted: 2, pending: 3, running: 4 };

export type TransitionVerdict = "apply" | "duplicate" | "illegal";

export function judgeTransition(from: JobState, to: JobState): TransitionVerdict {
  if (from === to) {
    return "duplicate";
  }
  if (isTerminal(from)) {
    return "illegal";
  }
  if (isTerminal(to)) {
    return from === "queued" ? "illegal" : "apply";
  }
  if (from === "running" && to === "pending") {
    return "apply";
  }
  if (to === "queued" || to === "leased") {
    return "illegal";
  }
  return RANK[to as LiveState] > RANK[from as LiveState] ? "apply" : "illegal";
}

/** Terminal states the job's retry policy may turn into a new attempt. */
export function retryFlag(state: JobState): "onTimeout" | "onPreemption" | "onNodeFail" | undefined {
  switch (state) {
    case "timeout":
      return "onTimeout";
    case "preempted":
      return "onPreemption";
    case "node_fail":
      return "onNodeFail";
    default:
      return undefined;
  }
}
