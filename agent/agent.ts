/**
 * Builds a running agent from its config: the executor, Slurm commands, gateway client, state file
 * and the cycle; then runs it as a daemon (a loop that never dies on a gateway or Slurm failure) or
 * once (for cron / scrontab).
 */
import { sleep } from "./sleep.ts";
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { agentAccount } from "./identity/agent-account.ts";
import { join } from "node:path";
import type { AgentConfig } from "./config.ts";
import type { AgentContext } from "./context.ts";
import { createLocalExecutor } from "./executor/local.ts";
import { spawnerKind } from "./executor/spawner-programs.ts";
import { remoteLoginEnv, sshExecutorFromConfig } from "./executor/ssh.ts";
import type { Executor } from "./executor/types.ts";
import { createGatewayApi, type GatewayApi } from "./gateway-api.ts";
import { verifyAgentToken } from "./token-check.ts";
import { AGENT_VERSION, collectInventory } from "./inventory.ts";
import { identityFromConfig, noFollowReads, siteModeOf } from "./identity/from-config.ts";
import type { IdentityGuard } from "./identity/guard.ts";
import { sudoExecutor, sudoReads } from "./identity/sudo.ts";
import { createLogger, type Logger } from "./log.ts";
import { resolveRoots } from "./paths.ts";
import { checkCacheRoot } from "./stage.ts";
import { loadSecretStore } from "./secrets.ts";
import { type SlurmCommands, slurmCommandsFor } from "./slurm-commands.ts";
import { openStateStore } from "./state.ts";
import { type CycleStats, createPacer, runCycle } from "./cycle.ts";
import { createReporter } from "./reporter.ts";
import { outputsSettled } from "./output-worker.ts";

export type AgentHandle = {
  ctx: AgentContext;
  runOnce(): Promise<CycleStats>;
  runForever(): Promise<void>;
  stop(): void;
  status(): Record<string, unknown>;
};

export function defaultStateFile(config: AgentConfig, env: Record<string, string | undefined>): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || "/tmp", ".local", "state");
  return join(base, "slurmgate", `agent-${config.SLURMGATE_CLUSTER}.json`);
}

/** One process per state file: two agents sharing one would each think they hold the other's jobs. */
function lockStateFile(path: string): () => void {
  const lock = `${path}.lock`;
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lock);
        } catch {}
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw err;
      }
      const pid = Number(readFileSync(lock, "utf8"));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid > 0;
      } catch {}
      if (alive) {
        throw new Error(`another agent (pid ${pid}) uses ${path}; give this one its own SLURMGATE_STATE_FILE`);
      }
      unlinkSync(lock);
    }
  }
  throw new Error(`cannot lock ${path}`);
}

/** A sudo-mode site agent's way to act as each mapped account (files, sbatch, scancel). */
function sudoFor(
  config: AgentConfig,
  identity: IdentityGuard,
  base: Executor,
  slurmEnv: Record<string, string | undefined>,
): NonNullable<AgentContext["sudo"]> {
  // Files a user's tools create through sudo get the union of this umask and sudoers' own: 0600.
  process.umask(0o077);
  const options = { account: agentAccount().username, slurmBin: config.SLURMGATE_SLURM_BIN };
  const cache = new Map<string, { executor: Executor; slurm: SlurmCommands }>();
  return {
    as(owner) {
      const account = identity.account?.(owner);
      if (account === undefined) {
        return null;
      }
      let as = cache.get(account);
      if (!as) {
        const executor = sudoExecutor(base, account, options);
        as = { executor, slurm: slurmCommandsFor(config, executor, slurmEnv) };
        cache.set(account, as);
      }
      return as;
    },
  };
}

const unlockAndThrow =
  (unlock: () => void) =>
  (err: unknown): never => {
    unlock();
    throw err;
  };

type AgentOverrides = {
  executor?: Executor;
  api?: GatewayApi;
  log?: Logger;
  mode?: "local" | "ssh";
  /** A daemon keeps asking an unreachable gateway whose token it holds; `--once` gives up at once. */
  waitForGateway?: boolean;
};

/**
 * Everything a cycle needs, with the state file locked: the executors (SSH, sudo, no-follow
 * reads), the Slurm commands, the identity guard, roots and secrets. Unlocks again if any of it fails.
 */
async function assemble(
  config: AgentConfig,
  env: Record<string, string | undefined>,
  overrides: AgentOverrides,
  api: GatewayApi,
  log: Logger,
  stopping: AbortSignal,
) {
  const ssh = !overrides.executor && config.SLURMGATE_SSH_HOST ? sshExecutorFromConfig(config, env, log) : null;
  const baseExecutor =
    overrides.executor ??
    ssh ??
    createLocalExecutor({
      defaultTimeoutMs: config.SLURMGATE_COMMAND_TIMEOUT_SECONDS * 1000,
      // Every sbatch slot, plus room for a tracking or cancel command meanwhile.
      spawners: config.SLURMGATE_SUBMIT_CONCURRENCY + 2,
      spawner: config.SLURMGATE_SPAWNER,
    });
  const ownExecutor = config.SLURMGATE_USER_MAP ? noFollowReads(baseExecutor) : baseExecutor;
  const stateFile = config.SLURMGATE_STATE_FILE ?? defaultStateFile(config, env);
  const unlock = lockStateFile(stateFile);
  const state = openStateStore(stateFile);
  const agentId =
    state.state.agentId ??
    config.SLURMGATE_AGENT_ID ??
    `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  if (state.state.agentId !== agentId) {
    state.setAgentId(agentId);
  }
  // Over SSH, Slurm's PATH/HOME/USER are the login node's, not this machine's.
  const slurmEnv = ssh ? await remoteLoginEnv(ssh).catch(unlockAndThrow(unlock)) : env;
  const { identity, siteMode } = (() => {
    try {
      return {
        identity: identityFromConfig(config, ownExecutor, api),
        siteMode: siteModeOf(config, process.getuid?.() ?? -1),
      };
    } catch (err) {
      unlock();
      throw err;
    }
  })();
  const roots = await resolveRoots(ownExecutor, config.SLURMGATE_SHARED_ROOTS).catch(unlockAndThrow(unlock));
  await checkCacheRoot(ownExecutor, roots.real, config.SLURMGATE_CACHE_ROOT).catch(unlockAndThrow(unlock));
  const sudo = siteMode === "sudo" ? sudoFor(config, identity, baseExecutor, slurmEnv) : undefined;
  const executor = sudo
    ? sudoReads(ownExecutor, roots.real[0]!, (owner) => sudo.as(owner)?.executor ?? null)
    : ownExecutor;
  const ctx: AgentContext = {
    config,
    agentId,
    api,
    identity,
    sudo,
    slurm: slurmCommandsFor(config, executor, slurmEnv),
    executor,
    roots,
    secrets: loadSecretStore(config.SLURMGATE_SECRETS_FILE, env),
    state,
    log,
    now: () => Date.now(),
    partitions: [],
    accounting: true,
    crashAt: env.SLURMGATE_TEST_CRASH_AT,
    stopping,
  };
  return { ctx, ssh, unlock, stateFile };
}

/** Runs cycles: publishes the inventory when due, keeps the last cycle's stats, logs what happened. */
function cycleRunner(ctx: AgentContext, mode: "local" | "ssh", signal: AbortSignal) {
  const { config, log } = ctx;
  const reporter = createReporter(ctx);
  const pacer = createPacer(ctx, (ms) => sleep(ms));
  const last: { stats?: CycleStats; at: number } = { at: 0 };
  let inventoryAt = 0;

  const publishInventory = async () => {
    try {
      const inventory = await collectInventory(ctx, { cycleMs: last.stats?.cycleMs, hostname: hostname(), mode });
      const result = await ctx.api.inventory(inventory);
      if (result.ok) {
        inventoryAt = ctx.now();
      } else {
        log("warn", "inventory not accepted", { status: result.status, message: result.message });
      }
    } catch (err) {
      log("error", "inventory failed", { error: (err as Error).message });
    }
  };

  const cycle = async (wait: number, forceTrack: boolean, waitForOutputs = false) => {
    if (ctx.now() - inventoryAt >= config.SLURMGATE_INVENTORY_SECONDS * 1000) {
      await publishInventory();
    }
    const stats = await runCycle(ctx, reporter, pacer, {
      wait,
      forceTrack,
      waitForOutputs,
      signal,
      heartbeat: { version: AGENT_VERSION, cycleMs: last.stats?.cycleMs, mode },
    });
    last.stats = stats;
    last.at = ctx.now();
    if (stats.errors.length) {
      log("warn", "cycle finished with errors", { errors: stats.errors.slice(0, 5) });
    } else if (stats.leased || stats.submitted || stats.reported) {
      log("info", "cycle", {
        leased: stats.leased,
        submitted: stats.submitted,
        reported: stats.reported,
        tracked: stats.tracked,
        ms: stats.cycleMs,
      });
    }
    return stats;
  };
  return { cycle, pacer, last };
}

/**
 * After the last cycle has finished (its submissions recorded, exactly as on any cycle): the
 * cluster shows down at once instead of after the liveness window. The leases stay until they
 * expire, so a restarted agent on the same state file simply renews them.
 */
async function sayGoodbye(ctx: AgentContext) {
  const result = await ctx.api.goodbye(ctx.agentId);
  if (result.ok) {
    ctx.log("info", "said goodbye to the gateway", {
      held: ctx.state.all().length,
      clusterAlive: result.value.clusterAlive,
    });
  } else {
    ctx.log("warn", "goodbye not delivered; the cluster shows down after the liveness window", {
      message: result.message,
    });
  }
}

/** The daemon loop: never dies on a failed cycle; backs off while the gateway or Slurm fail. */
async function loop(ctx: AgentContext, runner: ReturnType<typeof cycleRunner>, signal: AbortSignal) {
  const { config, state, log } = ctx;
  let failures = 0;
  while (!signal.aborted) {
    const busy = state.all().some((j) => j.phase === "submitting");
    const wait = busy
      ? 0
      : Math.min(config.SLURMGATE_POLL_WAIT_SECONDS, Math.ceil(runner.pacer.msUntilTrack(ctx.now()) / 1000));
    let stats: CycleStats | undefined;
    try {
      stats = await runner.cycle(state.all().length ? wait : config.SLURMGATE_POLL_WAIT_SECONDS, false);
    } catch (err) {
      log("error", "cycle crashed; carrying on", { error: (err as Error).message });
    }
    if (signal.aborted) {
      break; // stopping: the long-poll was cut short on purpose, that is no failure
    }
    if (!stats?.gatewayReachable || stats.errors.length > 0) {
      failures++;
      await sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)) * (0.75 + Math.random() / 2), signal);
    } else {
      failures = 0;
    }
  }
}

export async function createAgent(
  config: AgentConfig,
  env: Record<string, string | undefined>,
  overrides: AgentOverrides = {},
): Promise<AgentHandle> {
  const log = overrides.log ?? createLogger(config.SLURMGATE_LOG_LEVEL);
  const api = overrides.api ?? createGatewayApi({ baseUrl: config.SLURMGATE_URL, token: config.SLURMGATE_AGENT_TOKEN });
  // Before anything is locked, created or connected: a token of another cluster must not start.
  await verifyAgentToken(api, config.SLURMGATE_CLUSTER, { retry: overrides.waitForGateway ?? false, log });
  const controller = new AbortController();
  const { ctx, ssh, unlock, stateFile } = await assemble(config, env, overrides, api, log, controller.signal);
  const { agentId, state } = ctx;
  const mode = overrides.mode ?? (config.SLURMGATE_SSH_HOST ? "ssh" : "local");
  const runner = cycleRunner(ctx, mode, controller.signal);

  const status = () => ({
    agentId,
    cluster: config.SLURMGATE_CLUSTER,
    mode,
    tracked: state.all().length,
    submitting: state.all().filter((j) => j.phase === "submitting").length,
    lastCycleAt: runner.last.at ? new Date(runner.last.at).toISOString() : null,
    lastCycleMs: runner.last.stats?.cycleMs ?? null,
    lastErrors: runner.last.stats?.errors ?? [],
    stateFile,
  });

  return {
    ctx,
    status,
    async runOnce() {
      try {
        // The process ends after this cycle: an upload left running beside it would die with it.
        return await runner.cycle(0, true, true);
      } finally {
        unlock();
        ssh?.close();
      }
    },
    async runForever() {
      log("info", "agent started", {
        agentId,
        cluster: config.SLURMGATE_CLUSTER,
        gateway: config.SLURMGATE_URL,
        mode,
        // What starts its local commands (the executor above already chose, and would have failed on a bad choice).
        ...(overrides.executor || ssh ? {} : { spawner: spawnerKind(config.SLURMGATE_SPAWNER) }),
        stateFile,
      });
      try {
        await loop(ctx, runner, controller.signal);
      } finally {
        if (controller.signal.aborted) {
          // Aborted by the same signal, the uploads end at once; none may run on after "stopped".
          await outputsSettled(ctx);
          await sayGoodbye(ctx);
        }
        unlock();
        ssh?.close();
        log("info", "agent stopped", { agentId });
      }
    },
    stop() {
      controller.abort();
    },
  };
}
