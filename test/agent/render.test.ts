import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../agent/executor/quote.ts";
import { RenderError } from "../../agent/render/errors.ts";
import { renderBatchScript, type RenderInput } from "../../agent/render/render-batch-script.ts";
import { encodeEnvEntries } from "../../agent/render/data-files.ts";
import type { JobSpecInput } from "../../schemas/job.ts";
import {
  CANARY,
  NODE,
  PROBE,
  type ProbeOutput,
  bashSyntaxCheck,
  runBatchScript,
  writeJob,
} from "./helpers/run-rendered.ts";

const JOB_ID = "job_0123456789abcdefghij";
let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-render-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function input(spec: Partial<JobSpecInput>, extra: Partial<RenderInput> = {}): RenderInput {
  return {
    lease: {
      jobId: JOB_ID,
      attempt: 1,
      spec: { name: "t", command: ["true"], ...spec } as RenderInput["lease"]["spec"],
    },
    jobDir: join(root, "job"),
    secretsFile: null,
    apptainerBin: "apptainer",
    ...extra,
  };
}

function directives(script: string): string[] {
  return script.split("\n").filter((l) => l.startsWith("#SBATCH "));
}

function refusal(fn: () => unknown): RenderError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RenderError) {
      return err;
    }
    throw err;
  }
  throw new Error("expected a RenderError");
}

describe("renderBatchScript: #SBATCH block", () => {
  it("emits exactly the allow-listed options, in a fixed order (golden)", () => {
    const jobDir = join(root, "job");
    const out = renderBatchScript(
      input(
        {
          name: "train-1",
          partition: "gpu",
          account: "proj1",
          qos: "normal",
          resources: {
            nodes: 2,
            ntasksPerNode: 4,
            cpusPerTask: 8,
            memPerNode: "16G",
            gpus: { count: 2, type: "a100" },
            time: "1h30m",
          },
          array: { indexes: "0-9:2", maxParallel: 3 },
          extraSbatchArgs: ["--constraint=ib", "--exclusive"],
        },
        { allowedSbatchArgs: ["--constraint", "--exclusive"] },
      ),
    );
    expect(directives(out.script)).toEqual([
      "#SBATCH --job-name=train-1",
      `#SBATCH --comment=slurmgate:${JOB_ID}:1`,
      "#SBATCH --export=NONE",
      "#SBATCH --no-requeue",
      `#SBATCH --chdir=${jobDir}`,
      `#SBATCH --output=${jobDir}/stdout.%a`,
      `#SBATCH --error=${jobDir}/stderr.%a`,
      "#SBATCH --partition=gpu",
      "#SBATCH --account=proj1",
      "#SBATCH --qos=normal",
      "#SBATCH --nodes=2",
      "#SBATCH --ntasks-per-node=4",
      "#SBATCH --cpus-per-task=8",
      "#SBATCH --mem=16G",
      "#SBATCH --gres=gpu:a100:2",
      "#SBATCH --time=90",
      "#SBATCH --array=0-9:2%3",
      "#SBATCH --constraint=ib",
      "#SBATCH --exclusive",
    ]);
    expect(out.sbatchArgs).toEqual(["--export=NONE"]);
    expect(out.script.startsWith("#!/bin/bash\n#SBATCH ")).toBe(true);
  });

  it.each([
    ["45s", 1],
    ["60", 60],
    ["1:01", 2],
    ["2-00:00:00", 2880],
    ["1-12", 2160],
    ["61s", 2],
  ])("converts time %s to %i minutes", (time, minutes) => {
    const out = renderBatchScript(input({ resources: { time } }));
    expect(directives(out.script)).toContain(`#SBATCH --time=${minutes}`);
  });

  it("uses --mem-per-cpu and untyped GPUs", () => {
    const out = renderBatchScript(input({ resources: { memPerCpu: "512M", gpus: { count: 1 } } }));
    expect(directives(out.script)).toEqual(
      expect.arrayContaining(["#SBATCH --mem-per-cpu=512M", "#SBATCH --gres=gpu:1"]),
    );
  });

  it("groups dependencies by condition", () => {
    const out = renderBatchScript({
      ...input({}),
      lease: {
        jobId: JOB_ID,
        attempt: 3,
        spec: { name: "t", command: ["true"] } as RenderInput["lease"]["spec"],
        dependsOnSlurmIds: [
          { slurmJobId: "11", condition: "afterok" },
          { slurmJobId: "12", condition: "afterany" },
          { slurmJobId: "13_2", condition: "afterok" },
        ],
      },
    });
    expect(directives(out.script)).toContain("#SBATCH --dependency=afterok:11:13_2,afterany:12");
  });

  it.each([
    [{ slurmJobId: "12; rm", condition: "afterok" }],
    [{ slurmJobId: "12", condition: "singleton" }],
    [{ slurmJobId: "12", condition: "afterok\n#SBATCH --uid=0" }],
  ])("refuses dependency %j", (dep) => {
    const err = refusal(() =>
      renderBatchScript({
        ...input({}),
        lease: {
          jobId: JOB_ID,
          attempt: 1,
          spec: { name: "t", command: ["true"] } as RenderInput["lease"]["spec"],
          dependsOnSlurmIds: [dep],
        },
      }),
    );
    expect(err.code).toBe("slurm_dependency");
  });
});

describe("renderBatchScript: refusals (validate twice, compromised gateway)", () => {
  it.each<[string, Partial<JobSpecInput>, Partial<RenderInput>, string]>([
    ["newline in name", { name: "a\n#SBATCH --uid=0" }, {}, "invalid_spec"],
    ["partition with option", { partition: "debug --wrap=id" }, {}, "invalid_spec"],
    ["glued partition", { partition: "-pdebug" }, {}, "invalid_spec"],
    ["partition list", { partition: "gpu,debug" }, {}, "invalid_spec"],
    ["reserved env", { env: { LD_PRELOAD: "/x.so" } }, {}, "invalid_spec"],
    ["apptainer env", { env: { APPTAINER_BIND: "/:/host" } }, {}, "policy_rejected"],
    [
      "apptainer container env",
      { container: { image: "/img.sif", env: { SINGULARITYENV_X: "1" } } },
      {},
      "policy_rejected",
    ],
    ["env value with newline", { env: { A: "x\ny" } }, {}, "invalid_spec"],
    ["argv with NUL", { command: ["a\0b"] }, {}, "invalid_spec"],
    ["lone surrogate", { command: ["x", "\ud800"] }, {}, "invalid_spec"],
    ["'=' in program name", { command: ["A=B", "x"] }, {}, "invalid_spec"],
    ["extra arg not allowed", { extraSbatchArgs: ["--constraint=ib"] }, {}, "policy_rejected"],
    // Owned options fail the job schema itself now (schemas/sbatch.ts), before any allow-list is read.
    ["template-owned extra arg", { extraSbatchArgs: ["--wrap=id"] }, { allowedSbatchArgs: ["--wrap"] }, "invalid_spec"],
    ["extra arg output", { extraSbatchArgs: ["--output=/etc/x"] }, { allowedSbatchArgs: ["--output"] }, "invalid_spec"],
    ["secrets without file", { secrets: ["TOKEN"] }, {}, "secret_missing"],
    ["bash-special secret", { secrets: ["RANDOM"] }, { secretsFile: "/tmp/s" }, "invalid_spec"],
    ["relative jobDir", {}, { jobDir: "relative/dir" }, "path_outside_roots"],
    ["jobDir with ..", {}, { jobDir: "/a/../etc" }, "path_outside_roots"],
    ["workdir not resolved", { workdir: "data/run1" }, {}, "path_outside_roots"],
    [
      "apptainer bin with space",
      { container: { image: "/img.sif" } },
      { apptainerBin: "apptainer --fakeroot" },
      "policy_rejected",
    ],
    [
      "bind with comma",
      { container: { image: "/img.sif", binds: [{ src: "/a,/etc", dst: "/x" }] } },
      {},
      "invalid_spec",
    ],
    ["image with space", { container: { image: "/img.sif --writable" } }, {}, "invalid_spec"],
  ])("%s", (_label, spec, extra, code) => {
    expect(refusal(() => renderBatchScript(input(spec, extra))).code).toBe(code);
  });
});

describe("renderBatchScript: the wrapper, run with bash", () => {
  async function runJob(
    name: string,
    spec: Partial<JobSpecInput>,
    extra: Partial<RenderInput> = {},
    env: Record<string, string> = {},
  ) {
    const jobDir = join(root, name);
    const job = renderBatchScript(input(spec, { jobDir, ...extra }));
    const script = await writeJob(jobDir, job);
    await bashSyntaxCheck(script);
    return { jobDir, job, result: await runBatchScript(script, env) };
  }

  it("delivers argv, env and cwd exactly, and nothing of the agent's environment", async () => {
    const args = ["a b", "'$(id)`x`'", "", "--x", "*", "~", "\\", "é 日本 🎉", "\t"];
    const env = {
      FOO: "bar $HOME `id` $(id) 'q' \"d\"",
      RANDOM: "7",
      _: "under",
      POSIXLY_CORRECT: "1",
      sg_dir: "/evil",
      EMPTY: "",
    };
    const { jobDir, result } = await runJob("exact", { command: [NODE, PROBE, ...args], env });
    expect(result.code, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.argv).toEqual(args);
    expect(probe.cwd).toBe(jobDir);
    for (const [k, v] of Object.entries(env)) {
      expect(probe.env[k]).toBe(v);
    }
    for (const k of Object.keys(CANARY)) {
      expect(probe.env[k]).toBeUndefined();
    }
    expect(probe.env.SLURMGATE_JOB_ID).toBe(JOB_ID);
    expect(probe.env.SLURMGATE_JOB_DIR).toBe(jobDir);
    expect(probe.env.SLURMGATE_RESULT).toBe(`${jobDir}/result.json`);
    expect(probe.env.SLURM_JOB_ID).toBe("4242");
    expect(probe.env.SLURM_EXPORT_ENV).toBe("ALL");
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("0");
  });

  it("delivers values node could not even start with (malformed LC_ALL), checked with env -0", async () => {
    const env = { LC_ALL: "'\u{10000}''\u{10000}'", LANG: "$(id)", FUNCNEST: "1", TMOUT: "1", EXECIGNORE: "*" };
    const { result } = await runJob("locale", { command: ["/usr/bin/env", "-0"], env });
    expect(result.code, result.stderr).toBe(0);
    const seen = Object.fromEntries(
      result.stdout
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    expect(seen).toMatchObject(env);
  });

  it("runs setup lines first, in the working directory, with the env visible", async () => {
    const { result } = await runJob("setup", {
      command: [NODE, PROBE],
      env: { GREETING: "hi there" },
      setup: ['export FROM_SETUP="$GREETING!"', "cd /"],
    });
    expect(result.code, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.env.FROM_SETUP).toBe("hi there!");
    expect(probe.cwd).not.toBe("/");
  });

  it("stops with the setup's status when setup fails", async () => {
    const { jobDir, result } = await runJob("setup-fail", { command: [NODE, PROBE], setup: ["false"] });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("1");
  });

  it("stops at the first failing setup line and records which line and status in setup-status", async () => {
    const { jobDir, result } = await runJob("setup-line", {
      command: [NODE, PROBE],
      setup: ["true", "no-such-command-slurmgate", "echo never-reached"],
    });
    expect(result.code).toBe(127);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("slurmgate: setup line 2 failed with status 127");
    expect(await readFile(join(jobDir, "setup-status"), "utf8")).toBe("2 127\n");
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("127");
  });

  it("runs compound and hostile-looking setup lines as the user's own shell, without a status file on success", async () => {
    const { jobDir, result } = await runJob("setup-multi", {
      command: [NODE, PROBE],
      setup: ["if true; then export MULTI=yes; fi", "export Q='$(id) `id` \"'", "false || true"],
    });
    expect(result.code, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.env.MULTI).toBe("yes");
    expect(probe.env.Q).toBe('$(id) `id` "');
    await expect(readFile(join(jobDir, "setup-status"), "utf8")).rejects.toThrow();
  });

  it("runs a script body with bash and records its exit status", async () => {
    const { jobDir, result } = await runJob("script", {
      command: undefined,
      script: "echo \"$1-$PWD\"\necho 'lines'\nexit 3\n",
    });
    expect(result.code).toBe(3);
    expect(result.stdout).toBe(`-${jobDir}\nlines\n`);
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("3");
  });

  it("tells the payload its attempt and, from attempt 2 on, the previous attempt's directory", async () => {
    const first = await runJob("attempt-1", { command: [NODE, PROBE] });
    expect(first.result.code, first.result.stderr).toBe(0);
    const env1 = (JSON.parse(first.result.stdout) as ProbeOutput).env;
    expect(env1.SLURMGATE_ATTEMPT).toBe("1");
    expect(env1.SLURMGATE_PREVIOUS_JOB_DIR).toBeUndefined();
    const previousJobDir = join(root, "attempt-1");
    const lease = { jobId: JOB_ID, attempt: 2, spec: { name: "t", command: [NODE, PROBE] } };
    const second = await runJob("attempt-2", {}, { lease: lease as RenderInput["lease"], previousJobDir });
    expect(second.result.code, second.result.stderr).toBe(0);
    const env2 = (JSON.parse(second.result.stdout) as ProbeOutput).env;
    expect(env2.SLURMGATE_ATTEMPT).toBe("2");
    expect(env2.SLURMGATE_PREVIOUS_JOB_DIR).toBe(previousJobDir);
    expect(env2.SLURMGATE_JOB_DIR).toBe(join(root, "attempt-2"));
  });

  it("refuses a previous attempt's directory that is not a plain absolute path", () => {
    for (const previousJobDir of ["relative/dir", "/x/$(id)", "/x\n#SBATCH --uid=0", "/a'b"]) {
      expect(refusal(() => renderBatchScript(input({}, { previousJobDir }))).code).toBe("path_outside_roots");
    }
  });

  it("uses the resolved workdir", async () => {
    const workdir = join(root, "shared", "data", "run1");
    await import("node:fs/promises").then((fs) => fs.mkdir(workdir, { recursive: true }));
    const { result, job } = await runJob("workdir", { command: [NODE, PROBE], workdir: "data/run1" }, { workdir });
    expect(directives(job.script)).toContain(`#SBATCH --chdir=${workdir}`);
    expect((JSON.parse(result.stdout) as ProbeOutput).cwd).toBe(workdir);
  });

  it("exports secrets from the 0600 file, never writes them into the script, and removes the file", async () => {
    const jobDir = join(root, "secrets");
    const secretsFile = join(jobDir, "secrets.nul");
    const job = renderBatchScript(input({ command: [NODE, PROBE], secrets: ["API_TOKEN"] }, { jobDir, secretsFile }));
    const script = await writeJob(jobDir, job);
    const secret = "s3cr3t 'value' $(id)";
    await writeFile(secretsFile, encodeEnvEntries({ API_TOKEN: secret }), { mode: 0o600 });
    expect(job.script).not.toContain(secret);
    const result = await runBatchScript(script);
    expect(result.code, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.env.API_TOKEN).toBe(secret);
    expect(probe.env.SLURMGATE_SECRETS_FILE).toBe(secretsFile);
    await expect(stat(secretsFile)).rejects.toThrow();
  });

  it("removes the secrets file before the exit code appears, not after", async () => {
    const jobDir = join(root, "secrets-order");
    const secretsFile = join(jobDir, "secrets.nul");
    const job = renderBatchScript(input({ command: ["true"], secrets: ["API_TOKEN"] }, { jobDir, secretsFile }));
    const script = await writeJob(jobDir, job);
    await writeFile(secretsFile, encodeEnvEntries({ API_TOKEN: "x" }), { mode: 0o600 });
    // A `mv` first on PATH notes, at the moment the exit code is moved into place, whether the
    // secrets file is still there: whoever polls for the exit code could see exactly that.
    const shims = join(root, "secrets-order-shims");
    await mkdir(shims, { recursive: true });
    const seen = join(root, "secrets-order-seen");
    await writeFile(
      join(shims, "mv"),
      `#!/bin/bash\ncase "\${@: -1}" in */exitcode) if [[ -e ${shellQuote(secretsFile)} ]]; then echo present; else echo absent; fi >>${shellQuote(seen)};; esac\nexec /bin/mv "$@"\n`,
      { mode: 0o755 },
    );
    const result = await runBatchScript(script, { PATH: `${shims}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    expect(result.code, result.stderr).toBe(0);
    expect((await readFile(seen, "utf8")).trim()).toBe("absent");
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("0");
  });

  it("keeps the shared secrets file for array tasks and writes per-task exit codes", async () => {
    const jobDir = join(root, "array");
    const secretsFile = join(jobDir, "secrets.nul");
    const job = renderBatchScript(
      input({ command: ["false"], secrets: ["K"], array: { indexes: "0-1" } }, { jobDir, secretsFile }),
    );
    const script = await writeJob(jobDir, job);
    await writeFile(secretsFile, encodeEnvEntries({ K: "v" }), { mode: 0o600 });
    const result = await runBatchScript(script, { SLURM_ARRAY_TASK_ID: "1" });
    expect(result.code).toBe(1);
    expect((await readFile(join(jobDir, "exitcode.1"), "utf8")).trim()).toBe("1");
    expect((await stat(secretsFile)).isFile()).toBe(true);
  });

  it("forwards SIGTERM to the payload and records 143", async () => {
    const jobDir = join(root, "term");
    const job = renderBatchScript(input({ command: ["sleep", "30"] }, { jobDir }));
    const script = await writeJob(jobDir, job);
    const { spawn } = await import("node:child_process");
    const child = spawn("bash", [script], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 400));
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    expect(code).toBe(143);
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("143");
  });

  it("asks Slurm for the checkpoint signal on the batch shell, and nothing when not asked", () => {
    const asked = renderBatchScript(input({ checkpoint: { signal: "USR2", secondsBeforeLimit: 90 } }));
    expect(directives(asked.script)).toContain("#SBATCH --signal=B:USR2@90");
    expect(directives(renderBatchScript(input({})).script).join("\n")).not.toContain("--signal");
    // A compromised gateway's values are refused here too.
    for (const checkpoint of [
      { signal: "KILL", secondsBeforeLimit: 90 },
      { signal: "USR1", secondsBeforeLimit: 70_000 },
      { signal: "USR1", secondsBeforeLimit: 0 },
    ]) {
      expect(refusal(() => renderBatchScript(input({ checkpoint } as never))).code).toBe("invalid_spec");
    }
  });

  /** Starts the wrapper in the background; `signal` sends a signal to it (what slurmd does with B:). */
  async function startJob(jobDir: string, spec: Partial<JobSpecInput>, attempt = 1, previousJobDir?: string) {
    const lease = { jobId: JOB_ID, attempt, spec: { name: "t", ...spec } } as RenderInput["lease"];
    const script = await writeJob(jobDir, renderBatchScript(input({}, { jobDir, lease, previousJobDir })));
    const { spawn } = await import("node:child_process");
    const child = spawn("bash", [script], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
      child.on("close", (code) => r({ code, stdout, stderr })),
    );
    const output = () => stdout;
    return { child, done, output };
  }

  async function until(check: () => boolean, ms = 10_000) {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) {
        throw new Error("timed out");
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it("passes USR1 on to the payload and keeps waiting: the payload checkpoints and ends normally", async () => {
    const jobDir = join(root, JOB_ID);
    const payload = [
      "n=0",
      'trap \'echo "saved $n" > "$SLURMGATE_CHECKPOINT_DIR/state"; echo checkpointed\' USR1',
      "echo ready",
      "for n in $(seq 1 40); do sleep 0.05; done",
      "echo finished",
    ].join("\n");
    const job = await startJob(jobDir, { script: payload });
    await until(() => job.output().includes("ready"));
    job.child.kill("SIGUSR1");
    const result = await job.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("ready\ncheckpointed\nfinished\n");
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("0");
    expect(await readFile(join(jobDir, "checkpoint", "state"), "utf8")).toMatch(/^saved \d+\n$/);
  });

  it("gives every attempt the same checkpoint directory, inside the first attempt's", async () => {
    const first = join(root, JOB_ID);
    const later = join(root, `${JOB_ID}.attempt-3`);
    const write = await startJob(first, {
      script: 'echo "$SLURMGATE_CHECKPOINT_DIR"; echo 41 > "$SLURMGATE_CHECKPOINT_DIR/n"',
    });
    const read = await startJob(
      later,
      { script: 'echo "$SLURMGATE_CHECKPOINT_DIR"; cat "$SLURMGATE_CHECKPOINT_DIR/n"' },
      3,
      first,
    );
    const [a, b] = [await write.done, await read.done];
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(`${join(first, "checkpoint")}\n`);
    expect(b.stdout).toBe(`${join(first, "checkpoint")}\n41\n`);
    expect(((await stat(join(first, "checkpoint"))).mode & 0o777).toString(8)).toBe("700");
  });

  it("ignores a checkpoint signal that arrives while setup lines run, instead of dying of it", async () => {
    const jobDir = join(root, "usr1-setup");
    const job = await startJob(jobDir, { setup: ["echo setting-up; sleep 0.6"], command: ["echo", "payload ran"] });
    await until(() => job.output().includes("setting-up"));
    job.child.kill("SIGUSR2");
    const result = await job.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("setting-up\npayload ran\n");
  });

  it("still ends with the payload's own status when a signal kills the payload", async () => {
    const jobDir = join(root, "usr1-default");
    // No trap in the payload: USR1's default action ends it, and the job reports that honestly.
    const job = await startJob(jobDir, { script: "echo up; exec sleep 30" });
    await until(() => job.output().includes("up"));
    await new Promise((r) => setTimeout(r, 100));
    job.child.kill("SIGUSR1");
    const result = await job.done;
    expect(result.code).toBe(138);
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("138");
  });

  it("refuses a symlink planted where the checkpoint directory goes, creating nothing through it", async () => {
    const { mkdir, symlink, readdir } = await import("node:fs/promises");
    const elsewhere = join(root, "elsewhere");
    await mkdir(elsewhere, { recursive: true });
    const jobDir = join(root, "planted", JOB_ID);
    await mkdir(jobDir, { recursive: true });
    await symlink(elsewhere, join(jobDir, "checkpoint"));
    const job = await startJob(jobDir, { script: 'echo "must not run" > "$SLURMGATE_CHECKPOINT_DIR/x"' });
    const result = await job.done;
    expect(result.code).toBe(125);
    expect(result.stderr).toMatch(/checkpoint is a symlink; refusing it as the checkpoint directory/);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("builds the apptainer command line and picks the image by uname -m", async () => {
    const jobDir = join(root, "container");
    const x86 = join(root, "x86.sif");
    await writeFile(x86, "");
    const fake = join(root, "fake-apptainer");
    // A stand-in runtime that prints its argv and one env var, NUL-separated.
    await writeFile(fake, "#!/bin/bash\nprintf '%s\\0' \"$@\"\nprintf 'CENV=%s\\0' \"$CENV\"\n", { mode: 0o755 });
    const job = renderBatchScript(
      input(
        {
          command: ["python3", "-c", "print('$x')"],
          resources: { gpus: { count: 1 } },
          container: {
            images: { x86_64: x86, aarch64: "docker://ghcr.io/org/img:1.0" },
            binds: [{ src: "/data/in", dst: "/in", readonly: true }, { src: "/data/out" }],
            mountHome: false,
            env: { CENV: "c 'v' $y" },
          },
        },
        { jobDir, apptainerBin: fake },
      ),
    );
    const script = await writeJob(jobDir, job);
    const result = await runBatchScript(script);
    expect(result.code, result.stderr).toBe(0);
    const { execFileSync } = await import("node:child_process");
    const arch = execFileSync("uname", ["-m"], { encoding: "utf8" }).trim();
    const image = arch === "aarch64" ? "docker://ghcr.io/org/img:1.0" : x86;
    expect(result.stdout.split("\0").slice(0, -1)).toEqual([
      "exec",
      "--nv",
      "--no-home",
      "--bind",
      "/data/in:/in:ro",
      "--bind",
      "/data/out:/data/out",
      "--bind",
      jobDir,
      "--pwd",
      jobDir,
      "--bind",
      join(root, JOB_ID, "checkpoint"),
      image,
      "python3",
      "-c",
      "print('$x')",
      "CENV=c 'v' $y",
    ]);
  });

  it("ends with 125 and image_missing in its failure file when the image is not on the node", async () => {
    const { jobDir, result } = await runJob("missing-image", {
      command: ["true"],
      container: { image: join(root, "gone.sif") },
    });
    expect(result.code).toBe(125);
    const message = `container image ${join(root, "gone.sif")} does not exist or cannot be read on `;
    expect(result.stderr).toContain(`slurmgate: ${message}`);
    expect(await readFile(join(jobDir, "failure"), "utf8")).toMatch(
      new RegExp(`^image_missing ${message.replaceAll(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\S+\n$`),
    );
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("125");
  });

  it("fails clearly when no image exists for this architecture", async () => {
    const { execFileSync } = await import("node:child_process");
    const arch = execFileSync("uname", ["-m"], { encoding: "utf8" }).trim();
    const other = arch === "aarch64" ? "x86_64" : "aarch64";
    const { jobDir, result } = await runJob("noarch", {
      command: ["true"],
      container: { images: { [other]: "/img.sif" } },
    });
    expect(result.code).toBe(125);
    expect(result.stderr).toContain(`no container image for architecture ${arch}`);
    expect((await readFile(join(jobDir, "exitcode"), "utf8")).trim()).toBe("125");
  });
});
