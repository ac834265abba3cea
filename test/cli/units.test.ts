/**
 * The CLI's pure pieces in-process: flags → spec, durations, the one-line error format, and
 * `main` with an in-memory Io (no gateway needed for these paths).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NetworkError, SlurmgateError } from "../../client/index.ts";
import { duration } from "../../cli/args.ts";
import { EXIT, formatError, UsageError } from "../../cli/errors.ts";
import type { Io } from "../../cli/io.ts";
import { buildSpec, parseGpus } from "../../cli/job-spec.ts";
import { main } from "../../cli/main.ts";

function memoryIo(env: Record<string, string> = {}) {
  const out = { stdout: "", stderr: "" };
  const io: Io = {
    stdout: { write: (t: string) => (out.stdout += t) },
    stderr: { write: (t: string) => (out.stderr += t) },
    readStdin: async () => "",
    env,
    signal: new AbortController().signal,
  };
  return { io, out };
}

describe("buildSpec", () => {
  it("maps every flag", () => {
    const spec = buildSpec(
      {
        name: "t",
        gpus: "2",
        nodes: "2",
        "ntasks-per-node": "4",
        "mem-per-cpu": "2G",
        image: "docker://python:3.12",
        bind: ["/data:/data:ro", "/scratch"],
        array: "0-9%3",
        after: ["job_01jd7x2k9m4q8r6t5v3w1y0z:afterany"],
        retries: "2",
        secret: ["WANDB_KEY"],
        "sbatch-arg": ["--constraint=ib"],
        workdir: "runs/1",
      },
      ["./run.sh"],
    );
    expect(spec).toEqual({
      name: "t",
      workdir: "runs/1",
      resources: { nodes: 2, ntasksPerNode: 4, memPerCpu: "2G", gpus: { count: 2 } },
      command: ["./run.sh"],
      env: {},
      labels: {},
      secrets: ["WANDB_KEY"],
      container: {
        image: "docker://python:3.12",
        binds: [
          { src: "/data", dst: "/data", readonly: true },
          { src: "/scratch", readonly: false },
        ],
      },
      array: { indexes: "0-9", maxParallel: 3 },
      dependsOn: [{ job: "job_01jd7x2k9m4q8r6t5v3w1y0z", condition: "afterany" }],
      retries: { max: 2 },
      extraSbatchArgs: ["--constraint=ib"],
    });
  });

  it("lets flags override a job file and merges env and labels", () => {
    const dir = mkdtempSync(join(tmpdir(), "spec-"));
    const file = join(dir, "job.yaml");
    writeFileSync(file, "name: base\ncommand: [a]\nenv: { A: '1', B: '2' }\nresources: { time: 1h, cpusPerTask: 2 }\n");
    const spec = buildSpec({ file, env: ["B=3"], time: "2h", label: ["k=v"] }, []);
    expect(spec).toMatchObject({
      name: "base",
      command: ["a"],
      env: { A: "1", B: "3" },
      labels: { k: "v" },
      resources: { time: "2h", cpusPerTask: 2 },
    });
  });

  it("names the job after its command and refuses nothing to run", () => {
    expect(buildSpec({}, ["/usr/bin/python3", "x.py"]).name).toBe("python3");
    expect(() => buildSpec({}, [])).toThrow(UsageError);
    expect(parseGpus("a100:4")).toEqual({ type: "a100", count: 4 });
    expect(parseGpus("h100")).toEqual({ type: "h100", count: 1 });
    expect(() => parseGpus("a100:x")).toThrow(/--gpus/);
  });
});

describe("formatting and exit codes", () => {
  it("formats problems as one line without the body. prefix", () => {
    const err = new SlurmgateError({
      type: "t",
      title: "x",
      status: 422,
      code: "validation_failed",
      detail: "body.resources.time: a Slurm time (MM, HH:MM:SS)\nsecond line",
      field: "body.resources.time",
    });
    expect(formatError(err)).toBe("resources.time: a Slurm time (MM, HH:MM:SS); second line (422 validation_failed)");
    expect(formatError(new NetworkError("http://x:1/v1/me", new Error("boom")))).toBe("cannot reach http://x:1: boom");
    expect(duration("wait", "--timeout", "1h30m")).toBe(5_400_000);
    expect(duration("wait", "--timeout", "45")).toBe(45_000);
    expect(() => duration("wait", "--timeout", "soon")).toThrow(UsageError);
  });

  it("main returns usage errors as 2 and writes one line", async () => {
    const { io, out } = memoryIo();
    expect(await main(["wait"], io)).toBe(EXIT.usage);
    expect(out.stderr).toBe("slurmgate: missing JOB_ID (see: slurmgate wait --help)\n");
    const both = memoryIo();
    expect(await main(["logs", "--attempt", "2", "--all-attempts", "job_0123456789abcdefghij"], both.io)).toBe(
      EXIT.usage,
    );
    expect(both.out.stderr).toBe(
      "slurmgate: give --attempt N or --all-attempts, not both (see: slurmgate logs --help)\n",
    );
    const dry = memoryIo();
    expect(await main(["submit", "--print-spec", "--", "echo", "hi"], dry.io)).toBe(0);
    expect(JSON.parse(dry.out.stdout)).toEqual({ command: ["echo", "hi"], env: {}, labels: {}, name: "echo" });
  });
});
