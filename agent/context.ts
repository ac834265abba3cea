/**
 * What every step of the agent's cycle shares.
 */
import type { PartitionInfo } from "../schemas/agent.ts";
import type { AgentConfig } from "./config.ts";
import type { Executor } from "./executor/types.ts";
import type { GatewayApi } from "./gateway-api.ts";
import type { IdentityGuard } from "./identity/guard.ts";
import type { Logger } from "./log.ts";
import type { Roots } from "./paths.ts";
import type { SecretStore } from "./secrets.ts";
import type { SlurmCommands } from "./slurm-commands.ts";
import type { StateStore } from "./state.ts";

export type AgentContext = {
  config: AgentConfig;
  agentId: string;
  api: GatewayApi;
  slurm: SlurmCommands;
  executor: Executor;
  roots: Roots;
  secrets: SecretStore;
  state: StateStore;
  log: Logger;
  now: () => number;
  /** Latest sinfo partitions; leases naming another partition are refused before sbatch. */
  partitions: PartitionInfo[];
  accounting: boolean;
  /** Slurm's MaxArraySize from the last inventory; a sweep batch with a higher index is submitted job by job. */
  maxArraySize?: number;
  /** Whose jobs this agent may run and as which account; absent = every job, as itself. */
  identity?: IdentityGuard;
  /**
   * A site agent run as a service account (SLURMGATE_RUN_AS=sudo): files and Slurm commands acting
   * as the account a job's owner maps to, through sudo; null for an owner the mapping lacks.
   */
  sudo?: { as(owner: string): { executor: Executor; slurm: SlurmCommands } | null };
  /** Aborted when the agent is told to stop: a running output upload breaks off (the next start redoes it). */
  stopping?: AbortSignal;
  /** Test-only fault injection: SIGKILL the agent at a named step (see crashPoint). */
  crashAt?: string;
  /** Test-only: called at every crash point; a unit test throws from it to stop the step there. */
  onCrashPoint?: (step: CrashStep) => void;
};

export type CrashStep = "before-sbatch" | "after-sbatch" | "between-parts" | "before-report" | "mid-output-upload";

/**
 * Fault injection for the exactly-once tests: the process dies as abruptly as a power cut would
 * (SIGKILL: no cleanup, no flush) at the named step.
 */
export function crashPoint(ctx: AgentContext, step: CrashStep): void {
  ctx.onCrashPoint?.(step);
  if (ctx.crashAt === step) {
    ctx.log("warn", "test fault injection: killing the agent", { step });
    process.kill(process.pid, "SIGKILL");
  }
}
