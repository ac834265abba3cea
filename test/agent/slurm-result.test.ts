/**
 * Every Slurm command answers in one shape, `SlurmResult`: its failures as recorded from Slurm
 * 22.05 map to a code and a retryable flag, and an executor that throws (an SSH link dropping, a
 * program that will not start) or a sudo that refuses is a value from every command, never a throw.
 */
import { describe, expect, it } from "vitest";
import type { AgentContext } from "../../agent/context.ts";
import type { ExecResult, Executor } from "../../agent/executor/types.ts";
import { IdentityRefusal } from "../../agent/identity/guard.ts";
import { collectInventory, probeAccounting } from "../../agent/inventory.ts";
import { type SlurmCommands, createSlurmCommands } from "../../agent/slurm-commands.ts";
import type { TrackedJob } from "../../agent/state.ts";
import { lookupByTag } from "../../agent/submit.ts";
import { observe } from "../../agent/track.ts";
import { fixture } from "./helpers/fixtures.ts";

type Answer = Partial<ExecResult> | ((cmd: string, args: readonly string[]) => Partial<ExecResult>);

/** An executor replaying recorded answers by command name; a command it has no answer for throws. */
function replay(answers: Record<string, Answer>): Executor & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    async run(cmd, args) {
      const name = cmd.split("/").pop() ?? cmd;
      ran.push(name);
      const answer = answers[name];
      if (answer === undefined) {
        throw new Error(`ssh connection to login lost while running ${name}; its outcome is unknown`);
      }
      const value = typeof answer === "function" ? answer(name, args) : answer;
      return { code: 0, stdout: "", stderr: "", timedOut: false, ...value };
    },
  } as Executor & { ran: string[] };
}

function commands(executor: Executor): SlurmCommands {
  return createSlurmCommands({ executor, env: {}, binDir: "/usr/bin", apptainer: "apptainer", timeoutMs: 5_000 });
}

const since = new Date("2026-11-30T03:00:00Z");
const timedOut = { code: null, stdout: "", stderr: "", timedOut: true };

/** One call of every command, for the checks that must hold for all of them. */
const everyCommand: [string, (s: SlurmCommands) => Promise<unknown>][] = [
  ["sbatch", (s) => s.sbatch("/shared/alice/job_x/job.sbatch", ["--export=NONE"])],
  ["squeue", (s) => s.squeue()],
  ["sacct", (s) => s.sacct({ since, ids: ["12"] })],
  ["scontrol", (s) => s.scontrolAll()],
  ["sacctmgr", (s) => s.accountsOf("alice", "alpha")],
  ["scancel", (s) => s.scancel(["12", "13_2"])],
  ["sinfo", (s) => s.sinfo()],
  ["sbatch --version", (s) => s.slurmVersion()],
];

describe("an executor that throws", () => {
  it.each(everyCommand)("%s resolves to a retryable 'unreachable' instead of throwing", async (_name, call) => {
    const result = await call(commands(replay({})));
    expect(result).toMatchObject({ ok: false, retryable: true, code: "unreachable" });
    expect((result as { message: string }).message).toMatch(/did not complete: ssh connection .* lost/);
  });

  it.each(everyCommand)("%s resolves to a permanent 'sudo_refused' when sudo refuses", async (_name, call) => {
    const refusing: Executor = {
      run: async () => {
        throw new IdentityRefusal("sudo_refused", "sudo refused to run it as alice");
      },
    } as unknown as Executor;
    expect(await call(commands(refusing))).toEqual({
      ok: false,
      retryable: false,
      code: "sudo_refused",
      message: "sudo refused to run it as alice",
    });
  });

  it.each(everyCommand)("%s killed at its deadline is a retryable 'timeout'", async (name, call) => {
    const result = await call(commands(replay({ sbatch: timedOut, [name.split(" ")[0]!]: timedOut })));
    expect(result).toMatchObject({ ok: false, retryable: true, code: "timeout" });
  });
});

describe("sbatch", () => {
  it("a queued job is its id, even with a non-zero exit (then stderr is a warning)", async () => {
    const ok = commands(replay({ sbatch: { stdout: fixture("sbatch-ok.stdout.txt") } }));
    expect(await ok.sbatch("/s/job.sbatch", [])).toEqual({ ok: true, value: { slurmJobId: "7" } });
    const warned = commands(replay({ sbatch: { code: 1, stdout: "8\n", stderr: "sbatch: error: slow\n" } }));
    expect(await warned.sbatch("/s/job.sbatch", [])).toEqual({
      ok: true,
      value: { slurmJobId: "8", warning: "sbatch: error: slow" },
    });
  });

  it.each([
    ["sbatch-invalid-partition", "slurm_invalid_partition", false],
    ["sbatch-bad-time", "slurm_time_limit", false],
    ["sbatch-gres-bad-type", "slurm_gres_unavailable", false],
  ])("%s is a permanent %s", async (file, code, retryable) => {
    const slurm = commands(
      replay({
        sbatch: {
          code: 1,
          stdout: fixture(`${file}.stdout.txt`),
          stderr: fixture(`${file}.stderr.txt`),
        },
      }),
    );
    expect(await slurm.sbatch("/s/job.sbatch", [])).toMatchObject({ ok: false, retryable, code });
  });

  it("back-pressure and a controller that did not answer are retryable, the latter an unknown outcome", async () => {
    const full =
      "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (MaxSubmitJobsLimit)\n";
    expect(await commands(replay({ sbatch: { code: 1, stderr: full } })).sbatch("/s/j", [])).toMatchObject({
      ok: false,
      retryable: true,
      code: "backpressure",
    });
    const silent = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n";
    expect(await commands(replay({ sbatch: { code: 1, stderr: silent } })).sbatch("/s/j", [])).toMatchObject({
      ok: false,
      retryable: true,
      code: "transient",
    });
  });

  it("a hostile argument is refused before anything runs", async () => {
    const executor = replay({ sbatch: { stdout: "9\n" } });
    const result = await commands(executor).sbatch("/s/job.sbatch", ["--wrap=rm -rf /; echo"]);
    expect(result).toMatchObject({ ok: false, retryable: false, code: "invalid_argument" });
    expect(await commands(executor).sbatch("relative/job.sbatch", [])).toMatchObject({ code: "invalid_argument" });
    expect(executor.ran).toEqual([]);
  });
});

describe("squeue, sacct, scontrol, sacctmgr, sinfo", () => {
  it("squeue's non-zero exit is 'failed', never an empty queue", async () => {
    const slurm = commands(replay({ squeue: { code: 1, stderr: fixture("squeue-ids-all-invalid.stderr.txt") } }));
    expect(await slurm.squeue()).toEqual({
      ok: false,
      retryable: true,
      code: "failed",
      message: "squeue failed: slurm_load_jobs error: Invalid job id specified",
    });
    const ok = commands(replay({ squeue: { stdout: fixture("squeue-mixed.txt") } }));
    const rows = await ok.squeue();
    expect(rows.ok && rows.value[0]).toMatchObject({ slurmJobId: "7", jobState: "completed" });
  });

  it("sacct with accounting switched off is a permanent 'unavailable'; a database that did not answer may next time", async () => {
    const off = commands(
      replay({
        sacct: {
          code: 1,
          stdout: fixture("sacct-disabled.stdout.txt"),
          stderr: fixture("sacct-disabled.stderr.txt"),
        },
      }),
    );
    expect(await off.sacct({ since })).toMatchObject({ ok: false, retryable: false, code: "unavailable" });
    const down = commands(
      replay({ sacct: { code: 1, stderr: "sacct: error: Problem talking to the database: Connection refused\n" } }),
    );
    expect(await down.sacct({ since })).toMatchObject({ ok: false, retryable: true, code: "unavailable" });
    expect(await down.sacct({ since, ids: ["1;reboot"] })).toMatchObject({ ok: false, code: "invalid_argument" });
  });

  it("scontrol, sacctmgr and sinfo failures are 'failed' with Slurm's sentence", async () => {
    const slurm = commands(
      replay({
        scontrol: { code: 1, stderr: fixture("scontrol-invalid.stderr.txt") },
        sacctmgr: { code: 1, stderr: "sacctmgr: error: Problem talking to the database: Connection refused\n" },
        sinfo: { code: 1, stderr: "sinfo: error: Unable to contact slurm controller (connect failure)\n" },
      }),
    );
    expect(await slurm.scontrolAll()).toMatchObject({ ok: false, retryable: true, code: "failed" });
    expect(await slurm.accountsOf("alice", "alpha")).toMatchObject({ ok: false, code: "failed" });
    expect(await slurm.sinfo()).toEqual({
      ok: false,
      retryable: true,
      code: "failed",
      message: "sinfo failed: sinfo: error: Unable to contact slurm controller (connect failure)",
    });
    expect(await slurm.accountsOf("alice; id", "alpha")).toMatchObject({ ok: false, code: "invalid_argument" });
    const odd = commands(replay({ sacctmgr: { stdout: "default\nsacctmgr: warning: odd\n" } }));
    expect(await odd.accountsOf("alice", "alpha")).toMatchObject({
      ok: false,
      retryable: false,
      code: "unexpected_output",
    });
  });

  it("answers that succeed carry their value", async () => {
    const slurm = commands(
      replay({
        sinfo: { stdout: fixture("sinfo-alpha.txt") },
        sacctmgr: { stdout: "Lab-A\ndefault\n" },
        sbatch: { stdout: fixture("sbatch-version.txt") },
      }),
    );
    const sinfo = await slurm.sinfo();
    expect(sinfo.ok && sinfo.value.map((p) => p.name)).toEqual(["cpu", "short", "gpu"]);
    expect(await slurm.accountsOf("alice", "alpha")).toEqual({ ok: true, value: ["default", "lab-a"] });
    expect(await slurm.slurmVersion()).toEqual({ ok: true, value: "22.05.8" });
  });
});

describe("scancel", () => {
  const gone = "scancel: error: Kill job error on job id 12: Invalid job id specified\n";
  it("ids Slurm no longer knows are cancelled already (idempotent), even with a non-zero exit", async () => {
    const slurm = commands(replay({ scancel: { code: 1, stderr: gone } }));
    expect(await slurm.scancel(["12"])).toEqual({ ok: true, value: { gone: ["12"] } });
  });
  it("any other error is a retryable 'failed' naming it", async () => {
    const other = `${gone}scancel: error: Unable to contact slurm controller (connect failure)\n`;
    const slurm = commands(replay({ scancel: { code: 1, stderr: other } }));
    expect(await slurm.scancel(["12", "13"])).toEqual({
      ok: false,
      retryable: true,
      code: "failed",
      message: "scancel: error: Unable to contact slurm controller (connect failure)",
    });
  });
  it("a hostile id from a cancel order is refused, not run and not thrown", async () => {
    const executor = replay({ scancel: {} });
    expect(await commands(executor).scancel(["12 --user=root"])).toMatchObject({
      ok: false,
      retryable: false,
      code: "invalid_argument",
    });
    expect(await commands(executor).scancel([])).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(executor.ran).toEqual([]);
  });
});

describe("callers keep their meaning of a failure", () => {
  const job: TrackedJob = {
    jobId: "job_01m8n8e6fbvrd68ry4y7s69d8b",
    epoch: 1,
    attempt: 1,
    owner: "alice",
    jobDir: "/shared/alice/job_01m8n8e6fbvrd68ry4y7s69d8b",
    phase: "submitted",
    slurmJobId: "5",
    submittedAt: Date.parse("2026-11-30T03:37:06Z"),
    reported: "running",
    missingSince: null,
    logOffsets: { stdout: 0, stderr: 0 },
    cancelRequested: false,
    isArray: false,
    arrayIndexes: null,
    timeLimit: null,
  } as TrackedJob;
  const ctxOver = (slurm: SlurmCommands, accounting: boolean) =>
    ({
      accounting,
      now: () => Date.parse("2026-11-30T04:00:00Z"),
      log: () => {},
      config: { SLURMGATE_LOST_GRACE_SECONDS: 600 },
      slurm,
      executor: { readFile: async () => null },
    }) as unknown as AgentContext;

  it.each([true, false])(
    "tracking over a dropped link leaves the job as it was, never gone (accounting %s)",
    async (accounting) => {
      const seen = await observe(ctxOver(commands(replay({})), accounting), [job]);
      expect(seen.get(job.jobId)).toEqual({ state: "running", reason: "squeue failed; state unchanged" });
    },
  );

  it("a lookup by tag over a dropped link is incomplete, so nothing is resubmitted", async () => {
    const result = await lookupByTag(ctxOver(commands(replay({})), true), [
      { jobId: job.jobId, attempt: 1, since: Date.parse("2026-11-30T03:00:00Z") },
    ]);
    expect(result).toEqual({ found: new Map(), complete: false });
  });

  it("accounting is off only when sacct says so, not when the link dropped", async () => {
    expect(await probeAccounting(ctxOver(commands(replay({})), true))).toBe(true);
    const off = commands(replay({ sacct: { code: 1, stderr: fixture("sacct-disabled.stderr.txt") } }));
    expect(await probeAccounting(ctxOver(off, true))).toBe(false);
  });

  it("publishes Slurm's MaxArraySize from scontrol show config, and nothing when scontrol cannot say", async () => {
    const answers = {
      sinfo: { stdout: fixture("sinfo-alpha.txt") },
      sbatch: { stdout: fixture("sbatch-version.txt") },
      sacct: { stdout: "" },
      apptainer: { code: 127 },
    };
    const withConfig = ctxOver(
      commands(replay({ ...answers, scontrol: { stdout: fixture("scontrol-show-config.txt") } })),
      true,
    );
    const inventoryCtx = {
      ...withConfig,
      state: { all: () => [] },
      config: { SLURMGATE_SHARED_ROOTS: ["/s"] },
    } as unknown as AgentContext;
    expect(await collectInventory(inventoryCtx, { hostname: "h", mode: "local" })).toMatchObject({
      maxArraySize: 1001,
    });
    expect(inventoryCtx.maxArraySize).toBe(1001);
    const without = {
      ...inventoryCtx,
      maxArraySize: undefined,
      slurm: commands(replay({ ...answers, scontrol: { code: 1, stderr: "scontrol: error: down\n" } })),
    } as AgentContext;
    const published = await collectInventory(without, { hostname: "h", mode: "local" });
    expect(published).not.toHaveProperty("maxArraySize");
    expect(without.maxArraySize).toBeUndefined();
  });

  it("an inventory whose sinfo failed is not published as a cluster without partitions", async () => {
    const ctx = ctxOver(commands(replay({ sinfo: { code: 1, stderr: "sinfo: error: down\n" } })), true);
    await expect(collectInventory(ctx, { hostname: "h", mode: "local" })).rejects.toThrow(
      "sinfo failed: sinfo: error: down",
    );
  });
});
