/**
 * The options slurmgate owns are one list (schemas/sbatch.ts): the job schema the gateway applies,
 * the cluster config, the agent's config and the agent's renderer all refuse exactly its members,
 * and every option the renderer emits itself is on it.
 */
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import { buildDirectives, type DirectiveInput } from "../../agent/render/directives.ts";
import { RenderError } from "../../agent/render/errors.ts";
import { ClusterConfig, JobSpec, type JobSpecInput } from "../../schemas/index.ts";
import {
  AllowedSbatchOption,
  ExtraSbatchArg,
  SLURMGATE_OWNED_SBATCH_OPTIONS,
  effectiveAllowList,
  isSlurmgateOwned,
} from "../../schemas/sbatch.ts";

const JOB_ID = "job_0123456789abcdefghij";

function directives(spec: Partial<JobSpecInput>, extra: Partial<DirectiveInput> = {}): string[] {
  return buildDirectives({
    // Parsed with defaults but unchecked by the owned-options rule: what a compromised gateway could send.
    spec: { ...JobSpec.parse({ name: "t", command: ["true"] }), ...spec } as JobSpec,
    jobId: JOB_ID,
    attempt: 1,
    jobDir: "/shared/alice/job",
    workdir: "/shared/alice/job",
    dependsOnSlurmIds: [],
    allowedSbatchArgs: [],
    ...extra,
  });
}

function renderError(fn: () => unknown): RenderError {
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

const agentEnv = (allowed: string) => ({
  SLURMGATE_URL: "http://127.0.0.1:8080",
  SLURMGATE_AGENT_TOKEN: `sga_${"x".repeat(40)}`,
  SLURMGATE_CLUSTER: "alpha",
  SLURMGATE_SHARED_ROOTS: "/shared",
  SLURMGATE_ALLOWED_SBATCH_ARGS: allowed,
});

describe("one list of slurmgate-owned sbatch options", () => {
  it.each(SLURMGATE_OWNED_SBATCH_OPTIONS)("%s is refused everywhere, whatever an allow-list says", (option) => {
    // The renderer, even when its own allow-list names the option.
    const err = renderError(() =>
      directives(
        { extraSbatchArgs: ["--constraint=ib", `${option}=1`] },
        { allowedSbatchArgs: ["--constraint", option] },
      ),
    );
    expect([err.code, err.field]).toEqual(["policy_rejected", "extraSbatchArgs.1"]);
    // The job schema the gateway validates submissions (and the agent leases) with.
    const spec = JobSpec.safeParse({ name: "t", command: ["true"], extraSbatchArgs: [option] });
    expect(spec.success).toBe(false);
    expect(spec.error?.issues[0]?.path).toEqual(["extraSbatchArgs", 0]);
    // The admin's cluster config and the agent's own config.
    expect(ClusterConfig.safeParse({ name: "a", sharedRoots: ["/s"], allowedSbatchArgs: [option] }).success).toBe(
      false,
    );
    expect(() => parseAgentConfig(agentEnv(`--constraint,${option}`))).toThrow(
      /^invalid SLURMGATE_ALLOWED_SBATCH_ARGS: .*cannot be allow-listed \(got "--constraint,/,
    );
    expect(effectiveAllowList([option, "--constraint"], [option, "--constraint"])).toEqual(["--constraint"]);
  });

  it("covers every option the renderer emits itself (a new directive must join the list)", () => {
    const lines = directives(
      {
        partition: "gpu",
        account: "proj",
        qos: "high",
        resources: {
          nodes: 2,
          ntasksPerNode: 2,
          cpusPerTask: 4,
          memPerNode: "4G",
          gpus: { count: 1, type: "a100" },
          time: "1h",
        },
        array: { indexes: "0-3", maxParallel: 2 },
        extraSbatchArgs: ["--constraint=ib"],
      },
      { dependsOnSlurmIds: [{ slurmJobId: "12", condition: "afterok" }], allowedSbatchArgs: ["--constraint"] },
    );
    const emitted = lines.map((l) => /^#SBATCH (--[a-z-]+)/.exec(l)?.[1] ?? l);
    expect(emitted).toContain("--dependency");
    const own = emitted.filter((name) => name !== "--constraint");
    expect(own.length).toBe(lines.length - 1);
    for (const name of own) {
      expect(SLURMGATE_OWNED_SBATCH_OPTIONS).toContain(name);
    }
    const mem = directives({ resources: { memPerCpu: "1G" } }).map((l) => /^#SBATCH (--[a-z-]+)/.exec(l)?.[1]);
    expect(SLURMGATE_OWNED_SBATCH_OPTIONS).toContain(mem.find((n) => n?.startsWith("--mem")));
  });

  it("refuses abbreviations sbatch would read as an owned option, not options of their own", () => {
    for (const abbreviation of ["--hol", "--commen", "--outp", "--chd", "--gpus-per-n", "--kill-on"]) {
      expect(isSlurmgateOwned(abbreviation)).toBe(true);
      expect(ExtraSbatchArg.safeParse(`${abbreviation}=x`).error?.issues[0]?.message).toMatch(/abbreviates/);
      expect(AllowedSbatchOption.safeParse(abbreviation).success).toBe(false);
    }
    for (const own of ["--ntasks", "--constraint", "--exclusive", "--begin", "--mem-bind", "--gres-flags"]) {
      expect(isSlurmgateOwned(own)).toBe(false);
      expect(ExtraSbatchArg.safeParse(`${own}=x`).success).toBe(true);
    }
    // A hostile value still fails the pattern first.
    expect(ExtraSbatchArg.safeParse("--constraint=ib\n#SBATCH --uid=0").success).toBe(false);
  });

  it("lets the agent allow-list options slurmgate does not own", () => {
    expect(parseAgentConfig(agentEnv("--constraint, --exclusive")).SLURMGATE_ALLOWED_SBATCH_ARGS).toEqual([
      "--constraint",
      "--exclusive",
    ]);
    expect(() => parseAgentConfig(agentEnv("constraint"))).toThrow(
      /^invalid SLURMGATE_ALLOWED_SBATCH_ARGS: an option name like --constraint/,
    );
  });
});
