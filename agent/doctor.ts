/**
 * `slurmgate agent doctor`: a preflight before the agent runs at a site. One line per check with
 * what is wrong and how to fix it; non-zero exit when any check fails. `--smoke` then submits one
 * tiny job through the real path (sbatch → squeue → exit file) and waits for it.
 */
import { isInsideRoot } from "../schemas/roots.ts";
import { statSync } from "node:fs";
import { type AgentConfig, parseAgentConfig } from "./config.ts";
import { createLocalExecutor } from "./executor/local.ts";
import { type SshExecutor, remoteLoginEnv, sshExecutorFromConfig } from "./executor/ssh.ts";
import type { Executor } from "./executor/types.ts";
import { policyDisagreements } from "./doctor-policy.ts";
import { SPAWNER_PYTHON, spawnerKind } from "./executor/spawner-programs.ts";
import { type GatewayApi, createGatewayApi } from "./gateway-api.ts";
import { tokenMismatch } from "./token-check.ts";
import { type SlurmCommands, slurmCommandsFor } from "./slurm-commands.ts";
import { restBackendChecks, restConfigProblem } from "./slurm-rest/from-config.ts";

type Check = { name: string; ok: boolean; detail: string; fix?: string };

export async function checkRoots(
  executor: Executor,
  config: Pick<AgentConfig, "SLURMGATE_SHARED_ROOTS">,
): Promise<Check[]> {
  const checks: Check[] = [];
  for (const root of config.SLURMGATE_SHARED_ROOTS) {
    const st = await executor.stat(root);
    if (!st?.isDirectory) {
      checks.push({
        name: `shared root ${root}`,
        ok: false,
        detail: "does not exist or is not a directory",
        fix: `mkdir -p ${root}`,
      });
      continue;
    }
    // Personal agents and sudo-mode site agents need users to create their own directory here, so a
    // world-writable root is right when it is sticky (as scratch file systems are): no one can then
    // rename or remove another user's directory. Without the sticky bit anyone can.
    if (st.mode & 0o002 && !(st.mode & 0o1000)) {
      checks.push({
        name: `shared root ${root}`,
        ok: false,
        detail: "is world-writable without the sticky bit: any user can rename or remove another's job directories",
        fix: `chmod +t ${root} (or chmod o-w ${root} when only root or this agent's account creates directories here)`,
      });
      continue;
    }
    const probe = `${root}/.slurmgate-doctor-${process.pid}`;
    try {
      await executor.writeFile(probe, "ok", 0o600);
      await executor.rm(probe);
      checks.push({
        name: `shared root ${root}`,
        ok: true,
        detail:
          st.mode & 0o002 ? "exists, writable, world-writable and sticky" : "exists, writable, not world-writable",
      });
    } catch (err) {
      checks.push({
        name: `shared root ${root}`,
        ok: false,
        detail: `not writable: ${(err as Error).message}`,
        fix: `check ownership of ${root}`,
      });
    }
  }
  return checks;
}

/** The agent's roots and allow-list against the admin's cluster config: one failed check per difference. */
async function checkClusterPolicy(api: GatewayApi, config: AgentConfig): Promise<Check[]> {
  const cluster = await api.cluster();
  if (!cluster.ok) {
    return [
      {
        name: "cluster config",
        ok: false,
        detail: `cannot read it: ${cluster.status ? `HTTP ${cluster.status}: ` : ""}${cluster.message}`,
        fix: "upgrade the gateway, or register the cluster: slurmgate cluster add",
      },
    ];
  }
  const lines = policyDisagreements(
    { sharedRoots: config.SLURMGATE_SHARED_ROOTS, allowedSbatchArgs: config.SLURMGATE_ALLOWED_SBATCH_ARGS },
    cluster.value,
  );
  if (lines.length === 0) {
    return [
      {
        name: "cluster config",
        ok: true,
        detail: `shared roots and sbatch allow-list agree with ${cluster.value.name}'s cluster config`,
      },
    ];
  }
  return lines.map((detail) => ({ name: "cluster config", ok: false, detail }));
}

export async function doctorChecks(
  config: AgentConfig,
  env: Record<string, string | undefined>,
  executor: Executor = createLocalExecutor(),
) {
  const checks: Check[] = [];
  checks.push(...(await restBackendChecks(config)));
  // A config the REST backend cannot serve is reported above; the CLI checks still run.
  const slurm = slurmCommandsFor(
    restConfigProblem(config) ? { ...config, SLURMGATE_SLURMRESTD: undefined } : config,
    executor,
    env,
  );
  checks.push(...(await slurmChecks(config, slurm, executor)));
  checks.push(...(await checkRoots(executor, config)));
  checks.push(...secretStoreCheck(config));
  checks.push(...(await gatewayChecks(config)));
  return checks;
}

/** Which program starts the agent's local commands (agent/executor/spawner-programs.ts). */
export function spawnerCheck(config: Pick<AgentConfig, "SLURMGATE_SPAWNER">, python = SPAWNER_PYTHON): Check {
  const name = "command spawner";
  try {
    return spawnerKind(config.SLURMGATE_SPAWNER, python) === "python"
      ? { name, ok: true, detail: `${python} (posix_spawn: nothing of the spawner is copied per command)` }
      : {
          name,
          ok: true,
          detail:
            config.SLURMGATE_SPAWNER === "bash"
              ? "bash, as SLURMGATE_SPAWNER says (a fork per command)"
              : `bash (a fork per command): ${python} 3.8 or later would start commands for less`,
        };
  } catch (err) {
    return {
      name,
      ok: false,
      detail: (err as Error).message,
      fix: `install Python 3.8 or later as ${python}, or set SLURMGATE_SPAWNER=auto`,
    };
  }
}

/** SLURM_CONF, the Slurm commands and partitions, accounting, the container runtime. */
async function slurmChecks(config: AgentConfig, slurm: SlurmCommands, executor: Executor): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.SLURM_CONF) {
    const st = await executor.stat(config.SLURM_CONF);
    checks.push(
      st?.isFile
        ? { name: "SLURM_CONF", ok: true, detail: config.SLURM_CONF }
        : {
            name: "SLURM_CONF",
            ok: false,
            detail: `${config.SLURM_CONF} does not exist`,
            fix: "point SLURM_CONF at the cluster's slurm.conf",
          },
    );
  }
  const version = await slurm.slurmVersion();
  const sinfo = version.ok ? await slurm.sinfo() : version;
  if (version.ok && sinfo.ok) {
    const partitions = sinfo.value;
    checks.push({ name: "slurm commands", ok: version.value !== "unknown", detail: `Slurm ${version.value}` });
    checks.push({
      name: "partitions",
      ok: partitions.length > 0,
      detail: partitions
        .map(
          (p) =>
            `${p.name}${p.default ? "*" : ""} (${p.nodes} nodes, ${p.gpus.map((g) => `${g.count}×${g.type}`).join(" ") || "no GPUs"})`,
        )
        .join(", "),
      fix: partitions.length ? undefined : "sinfo shows no partitions: check SLURM_CONF and slurmctld",
    });
  } else if (!sinfo.ok) {
    checks.push({
      name: "slurm commands",
      ok: false,
      detail: sinfo.message,
      fix: "install Slurm's client commands or set SLURMGATE_SLURM_BIN",
    });
  }
  const acct = await slurm.sacct({ since: new Date(Date.now() - 60_000) });
  checks.push({
    name: "accounting",
    ok: true,
    detail: acct.ok
      ? "sacct answers"
      : `off (${acct.message}); the agent falls back to scontrol and the exit-code file`,
  });
  const apptainer = await slurm.apptainerVersion();
  checks.push({
    name: "container runtime",
    ok: true,
    detail: apptainer ?? `${config.SLURMGATE_APPTAINER} not found: container jobs will be refused`,
  });
  return checks;
}

/** The secret store, when one is configured: readable by this account only. */
function secretStoreCheck(config: AgentConfig): Check[] {
  const checks: Check[] = [];
  if (config.SLURMGATE_SECRETS_FILE) {
    try {
      const mode = statSync(config.SLURMGATE_SECRETS_FILE).mode & 0o777;
      checks.push(
        mode & 0o077
          ? {
              name: "secret store",
              ok: false,
              detail: `mode ${mode.toString(8)}`,
              fix: `chmod 600 ${config.SLURMGATE_SECRETS_FILE}`,
            }
          : { name: "secret store", ok: true, detail: `${config.SLURMGATE_SECRETS_FILE} (mode ${mode.toString(8)})` },
      );
    } catch (err) {
      checks.push({
        name: "secret store",
        ok: false,
        detail: (err as Error).message,
        fix: "create it with NAME=value lines and chmod 600",
      });
    }
  }
  return checks;
}

/** The gateway answers, the token is this cluster's agent token, the cluster config agrees, the clock is close. */
async function gatewayChecks(config: AgentConfig): Promise<Check[]> {
  const checks: Check[] = [];
  const api = createGatewayApi({
    baseUrl: config.SLURMGATE_URL,
    token: config.SLURMGATE_AGENT_TOKEN,
    timeoutMs: 10_000,
  });
  const started = Date.now();
  const me = await api.me();
  if (!me.ok) {
    checks.push({
      name: "gateway",
      ok: false,
      detail: me.status ? `HTTP ${me.status}: ${me.message}` : me.message,
      fix:
        me.status === 401
          ? "the token is unknown, revoked or expired: create a new agent token"
          : `check SLURMGATE_URL (${config.SLURMGATE_URL}) and the network`,
    });
  } else {
    checks.push({ name: "gateway", ok: true, detail: `${config.SLURMGATE_URL} answers` });
    const mismatch = tokenMismatch(me.value, config.SLURMGATE_CLUSTER);
    checks.push(
      mismatch
        ? {
            name: "token",
            ok: false,
            detail: mismatch,
            fix: `slurmgate token create --cluster ${config.SLURMGATE_CLUSTER}`,
          }
        : { name: "token", ok: true, detail: `agent token bound to ${me.value.cluster}` },
    );
    if (!mismatch) {
      checks.push(...(await checkClusterPolicy(api, config)));
    }
    const rtt = Date.now() - started;
    const skew = Date.parse(me.value.serverTime) - (started + rtt / 2);
    checks.push(
      Math.abs(skew) < 30_000
        ? { name: "clock", ok: true, detail: `skew ${Math.round(skew)} ms (leases use the gateway's clock only)` }
        : {
            name: "clock",
            ok: false,
            detail: `skew ${Math.round(skew / 1000)} s`,
            fix: "enable NTP (chrony/systemd-timesyncd) on this host",
          },
    );
  }
  return checks;
}

async function smokeTest(
  config: AgentConfig,
  env: Record<string, string | undefined>,
  executor: Executor,
): Promise<Check> {
  const slurm = slurmCommandsFor(config, executor, env);
  const dir = `${config.SLURMGATE_SHARED_ROOTS[0]}/.slurmgate-smoke-${Date.now()}`;
  if (!isInsideRoot(dir, config.SLURMGATE_SHARED_ROOTS[0]!)) {
    return { name: "smoke job", ok: false, detail: "bad shared root" };
  }
  await executor.mkdir(dir, 0o700);
  await executor.writeFile(
    `${dir}/job.sbatch`,
    `#!/bin/bash\n#SBATCH --job-name=slurmgate-smoke\n#SBATCH --time=1\n#SBATCH --output=${dir}/stdout\necho ok > ${dir}/exitcode.tmp && echo 0 > ${dir}/exitcode\n`,
    0o700,
  );
  const submitted = await slurm.sbatch(`${dir}/job.sbatch`, []);
  if (!submitted.ok) {
    return { name: "smoke job", ok: false, detail: `sbatch refused it: ${submitted.message}` };
  }
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const exit = await executor.readFile(`${dir}/exitcode`);
    if (exit?.toString().trim() === "0") {
      await executor.rm(dir, { recursive: true });
      return { name: "smoke job", ok: true, detail: `Slurm job ${submitted.value.slurmJobId} ran and exited 0` };
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return {
    name: "smoke job",
    ok: false,
    detail: `Slurm job ${submitted.value.slurmJobId} did not finish within 2 minutes`,
    fix: "check squeue for its reason",
  };
}

export async function runDoctor(env: Record<string, string | undefined>, options: { smoke: boolean }): Promise<number> {
  let config: AgentConfig;
  try {
    config = parseAgentConfig(env);
  } catch (err) {
    for (const line of (err as Error).message.split("\n")) {
      process.stdout.write(`FAIL config: ${line}\n`);
    }
    return 1;
  }
  const spawner = config.SLURMGATE_SSH_HOST ? null : spawnerCheck(config);
  let executor: Executor = createLocalExecutor({ spawner: spawner?.ok ? config.SLURMGATE_SPAWNER : "bash" });
  let slurmSource = env;
  let ssh: SshExecutor | null = null;
  const checks: Check[] = spawner ? [spawner] : [];
  if (config.SLURMGATE_SSH_HOST) {
    try {
      ssh = sshExecutorFromConfig(config, env);
      await ssh.connect();
      slurmSource = await remoteLoginEnv(ssh);
      executor = ssh;
      checks.push({ name: "ssh", ok: true, detail: `connected to ${config.SLURMGATE_SSH_HOST}, host key pinned` });
    } catch (err) {
      ssh?.close();
      checks.push({
        name: "ssh",
        ok: false,
        detail: (err as Error).message,
        fix: "check SLURMGATE_SSH_HOST/PORT/USER/KEY/HOST_KEY (or SSH_AUTH_SOCK); test with ssh -p PORT USER@HOST true",
      });
    }
  }
  if (checks.every((c) => c.ok)) {
    checks.push(...(await doctorChecks(config, slurmSource, executor)));
    if (options.smoke && checks.every((c) => c.ok)) {
      checks.push(await smokeTest(config, slurmSource, executor));
    }
  }
  ssh?.close();
  for (const c of checks) {
    process.stdout.write(
      `${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}${c.ok || !c.fix ? "" : `\n     fix: ${c.fix}`}\n`,
    );
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
