/**
 * References in argv ({SLURMGATE_…}): the schema refuses what a job cannot name, the TS reference
 * expands in one pass, and the wrapper (run with plain bash) replaces them with its own values while
 * every other byte of the element stays one literal argv element.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RenderInput, renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { expandArgvRefs } from "../../schemas/argv-refs.ts";
import { JobSpec, type JobSpecInput } from "../../schemas/job.ts";
import { NODE, PROBE, type ProbeOutput, bashSyntaxCheck, runBatchScript, writeJob } from "./helpers/run-rendered.ts";

const JOB_ID = "job_0123456789abcdefghij";
let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-argv-refs-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function issues(spec: Partial<JobSpecInput>): { path: string; message: string }[] {
  const r = JobSpec.safeParse({ name: "t", ...spec });
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

describe("the schema's allow-list", () => {
  it("accepts slurmgate's own variables, declared caches and declared services", () => {
    expect(
      issues({
        command: [
          "eval",
          "--out={SLURMGATE_RESULT}",
          "{SLURMGATE_CACHE_MODELS_TINY}",
          "{SLURMGATE_SERVICE_API_URL}/v1",
        ],
        cache: ["models/tiny"],
        services: [
          {
            name: "api",
            command: ["srv", "--port={SLURMGATE_SERVICE_PORT}"],
            health: { tcp: true },
            timeoutSeconds: 5,
          },
        ],
      }),
    ).toEqual([]);
  });

  it("names command[i] and the reason for an unknown, undeclared or misplaced reference", () => {
    expect(issues({ command: ["x", "{SLURMGATE_SECRETS_FILE}"] })).toEqual([
      { path: "command.1", message: expect.stringContaining("not one of slurmgate's run-time variables") },
    ]);
    expect(issues({ command: ["x", "{SLURMGATE_CACHE_MODELS_TINY}"] })[0]).toEqual({
      path: "command.1",
      message: expect.stringContaining("a cache the job does not name"),
    });
    expect(issues({ command: ["{SLURMGATE_SERVICE_API_URL}"] })[0]?.path).toBe("command.0");
    // Another service's URL does not exist yet when a service starts; the payload has no own port.
    expect(
      issues({
        command: ["{SLURMGATE_SERVICE_PORT}"],
        services: [
          { name: "api", command: ["srv", "{SLURMGATE_SERVICE_API_URL}"], health: { tcp: true }, timeoutSeconds: 5 },
        ],
      }).map((i) => i.path),
    ).toEqual(["command.0", "services.0.command.1"]);
  });
});

describe("expandArgvRefs", () => {
  it("replaces in one pass: a value with spaces, quotes, $(…) or another reference stays literal", () => {
    const values = { SLURMGATE_JOB_DIR: "/a b/'q' \"d\" $(id) `id` * {SLURMGATE_RESULT} $&", SLURMGATE_RESULT: "/r" };
    expect(expandArgvRefs("{SLURMGATE_JOB_DIR}/x", values)).toBe(`${values.SLURMGATE_JOB_DIR}/x`);
    expect(expandArgvRefs("{SLURMGATE_RESULT}{SLURMGATE_RESULT}{SLURMGATE_RESULT", values)).toBe(
      "/r/r{SLURMGATE_RESULT",
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell-style "${…}" in argv is the input under test
    expect(expandArgvRefs("{slurmgate_result} {NOT_OURS} ${SLURMGATE_RESULT}", values)).toBe(
      "{slurmgate_result} {NOT_OURS} $/r",
    );
  });
});

describe("the wrapper expands references with plain bash", () => {
  async function runJob(name: string, spec: Partial<JobSpecInput>, extra: Partial<RenderInput> = {}) {
    const jobDir = join(root, name);
    const job = renderBatchScript({
      lease: { jobId: JOB_ID, attempt: 1, spec: { name: "t", ...spec } as RenderInput["lease"]["spec"] },
      jobDir,
      secretsFile: null,
      apptainerBin: "apptainer",
      ...extra,
    });
    const script = await writeJob(jobDir, job);
    await bashSyntaxCheck(script);
    // Job id 4243: a port slot apart from services-render's 4242, whose services run at the same time.
    return { jobDir, result: await runBatchScript(script, { SLURM_JOB_ID: "4243", SLURM_JOBID: "4243" }) };
  }

  it("gives the payload its own result path, job dir and cache path, the rest byte-exact", async () => {
    const cacheDir = join(root, "cache-models", "tiny");
    const args = [
      "--out={SLURMGATE_RESULT}",
      "{SLURMGATE_JOB_DIR}/a b {SLURMGATE_ATTEMPT}",
      "{SLURMGATE_CACHE_MODELS_TINY}",
      "'$(id)' * {SLURMGATE_RESULT",
      "{NOT_OURS}",
    ];
    const { jobDir, result } = await runJob(
      "payload",
      { command: [NODE, PROBE, ...args], cache: ["models/tiny"] },
      { caches: [{ ref: "models/tiny", path: cacheDir }] },
    );
    expect(result.code, result.stderr).toBe(0);
    const probe = JSON.parse(result.stdout) as ProbeOutput;
    expect(probe.argv).toEqual([
      `--out=${jobDir}/result.json`,
      `${jobDir}/a b 1`,
      cacheDir,
      "'$(id)' * {SLURMGATE_RESULT",
      "{NOT_OURS}",
    ]);
  });

  it("gives a service its own port in its argv and the payload the service's URL", async () => {
    const server = `require("http").createServer((q,s)=>s.end(process.argv[1])).listen(+process.argv[2],"127.0.0.1")`;
    const fetchIt = "fetch(process.argv[1]).then(r=>r.text()).then(t=>console.log(t+' '+process.argv[1]))";
    const { result } = await runJob("service", {
      command: [NODE, "-e", fetchIt, "{SLURMGATE_SERVICE_API_URL}/x"],
      services: [
        {
          name: "api",
          command: [NODE, "-e", server, "$(id) {SLURMGATE_JOB_ID}", "{SLURMGATE_SERVICE_PORT}"],
          health: { tcp: true },
          timeoutSeconds: 20,
        },
      ],
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(new RegExp(`^\\$\\(id\\) ${JOB_ID} http://127\\.0\\.0\\.1:\\d+/x$`));
  });

  it("is refused by the agent too when a compromised gateway leases a reference the job cannot name", async () => {
    await expect(runJob("unlisted", { command: [NODE, "-e", "1", "{SLURMGATE_SECRETS_FILE}"] })).rejects.toMatchObject({
      code: "invalid_spec",
      message: expect.stringContaining("command.3: {SLURMGATE_SECRETS_FILE}"),
    });
  });
});
