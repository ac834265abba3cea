/**
 * DESIGN invariant 4, proven by running the rendered script: for arbitrary user strings, either
 * the schema or the renderer refuses them, or the payload sees exactly the argv, env and cwd asked.
 * FC_NUM_RUNS raises the number of runs (default 150 per property).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RenderError } from "../../agent/render/errors.ts";
import { renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { JobSpec } from "../../schemas/job.ts";
import {
  CANARY,
  NODE,
  PROBE,
  type ProbeOutput,
  bashSyntaxCheck,
  isBaselineEnv,
  runBatchScript,
  writeJob,
} from "./helpers/run-rendered.ts";
import { elementJobId, runTask, writeBatch } from "./helpers/run-batch.ts";

const NUM_RUNS = Number(process.env.FC_NUM_RUNS ?? 150);
const TIMEOUT_MS = Math.max(60_000, NUM_RUNS * 1_000);
const JOB_ID = "job_0123456789abcdefghij";
const META = [
  ..."'\"$`\\;|&<>(){}[]*?~!# =%:,.-_/\t\n\r\0",
  "\u2028",
  "\u202e",
  "\u00a0",
  "\uff04",
  "é",
  "🎉",
  "\ud800",
  "$(",
  "${",
  "#SBATCH",
  "--wrap",
  "..",
];

/** Full unicode (including lone surrogates) mixed with a biased alphabet of shell metacharacters. */
const PRINTABLE_META = META.filter((c) => !/[\0\r\n\ud800]/.test(c));
const nasty = (maxLength = 24) =>
  fc.oneof(
    { arbitrary: fc.string({ unit: "binary", maxLength }), weight: 1 },
    { arbitrary: fc.string({ unit: fc.constantFrom(...META), maxLength }), weight: 1 },
    { arbitrary: fc.string({ unit: fc.constantFrom(...PRINTABLE_META), maxLength }), weight: 3 },
    {
      arbitrary: fc.string({
        unit: fc.oneof(fc.constantFrom(...PRINTABLE_META), fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 })),
        maxLength,
      }),
      weight: 3,
    },
    {
      arbitrary: fc.string({
        unit: fc.oneof(fc.constantFrom(...META), fc.string({ unit: "binary", minLength: 1, maxLength: 1 })),
        maxLength,
      }),
      weight: 1,
    },
  );
const envName = fc.oneof(
  { arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/), weight: 12 },
  {
    arbitrary: fc.constantFrom(
      "RANDOM",
      "_",
      "PWD",
      "SHELLOPTS",
      "POSIXLY_CORRECT",
      "FUNCNEST",
      "sg_dir",
      "sg_payload",
      "TMOUT",
      "IFS",
      "PATH",
      "LD_PRELOAD",
      "BASH_ENV",
      "APPTAINER_BIND",
      "SLURM_JOB_ID",
      "SLURMGATE_RESULT",
      "LC_ALL",
      "TERM",
    ),
    weight: 2,
  },
  { arbitrary: nasty(8), weight: 1 },
);

/**
 * The probe is node, and node (ICU) segfaults on a malformed locale name in LC_ALL, LC_xxx or LANG;
 * those values are delivered exactly (see render.test.ts) but cannot be observed with this probe.
 */
function probeSafe(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(([k, v]) => !/^(LC_|LANG)/.test(k) || /^[A-Za-z0-9_.@-]*$/.test(v)),
  );
}

let root = "";
let n = 0;
/** How many generated cases were actually run (not refused): the property must not pass vacuously. */
const ran = { argv: 0, container: 0, batch: 0 };
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-prop-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Outcome =
  | { refused: "schema" | "renderer" }
  | { probe: ProbeOutput; jobDir: string; workdir: string; script: string };

async function renderAndRun(
  spec: Record<string, unknown>,
  workdirRel: string | undefined,
  apptainerBin = "apptainer",
): Promise<Outcome> {
  const parsed = JobSpec.safeParse(spec);
  if (!parsed.success) {
    return { refused: "schema" };
  }
  const jobDir = join(root, `job${n++}`);
  const workdir = workdirRel === undefined ? jobDir : join(root, "shared", workdirRel);
  let job: ReturnType<typeof renderBatchScript>;
  try {
    job = renderBatchScript({
      lease: { jobId: JOB_ID, attempt: 1, spec: parsed.data },
      jobDir,
      workdir,
      secretsFile: null,
      apptainerBin,
    });
  } catch (err) {
    if (err instanceof RenderError) {
      return { refused: "renderer" };
    }
    throw err;
  }
  await mkdir(workdir, { recursive: true });
  const script = await writeJob(jobDir, job);
  await bashSyntaxCheck(script);
  const result = await runBatchScript(script);
  expect(result.code, result.stderr).toBe(0);
  const probe = JSON.parse(result.stdout) as ProbeOutput;
  await rm(jobDir, { recursive: true, force: true });
  return { probe, jobDir, workdir, script: job.script };
}

describe("rendered scripts deliver user strings exactly or refuse them", () => {
  it(
    "argv items, env names and values, workdir, job name",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(nasty(), { maxLength: 6 }),
          fc.dictionary(envName, nasty(), { maxKeys: 5 }),
          fc.option(
            fc.oneof(
              { arbitrary: fc.stringMatching(/^[A-Za-z0-9_.+-]{1,8}(\/[A-Za-z0-9_.+-]{1,8}){0,2}$/), weight: 4 },
              { arbitrary: nasty(12), weight: 1 },
            ),
            { nil: undefined },
          ),
          fc.oneof(
            { arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/), weight: 6 },
            { arbitrary: nasty(12), weight: 1 },
          ),
          async (args, rawEnv, workdir, name) => {
            const env = probeSafe(rawEnv);
            const spec = { name, command: [NODE, PROBE, ...args], env, ...(workdir === undefined ? {} : { workdir }) };
            const outcome = await renderAndRun(spec, workdir);
            if ("refused" in outcome) {
              return;
            }
            ran.argv++;
            const { probe } = outcome;
            expect(probe.argv).toEqual(args);
            expect(probe.cwd).toBe(outcome.workdir);
            for (const [k, v] of Object.entries(env)) {
              expect(probe.env[k]).toBe(v);
            }
            for (const k of Object.keys(probe.env)) {
              expect(Object.hasOwn(env, k) || isBaselineEnv(k), `unexpected variable ${k}`).toBe(true);
            }
            for (const k of Object.keys(CANARY)) {
              expect(probe.env[k]).toBeUndefined();
            }
            const sbatchLines = outcome.script.split("\n").filter((l) => l.startsWith("#SBATCH"));
            expect(sbatchLines[0]).toBe(`#SBATCH --job-name=${name}`);
            expect(sbatchLines.map((l) => l.split("=")[0])).toEqual([
              "#SBATCH --job-name",
              "#SBATCH --comment",
              "#SBATCH --export",
              "#SBATCH --no-requeue",
              "#SBATCH --chdir",
              "#SBATCH --output",
              "#SBATCH --error",
            ]);
          },
        ),
        { numRuns: NUM_RUNS },
      );
      expect(ran.argv).toBeGreaterThan(NUM_RUNS * 0.25);
    },
    TIMEOUT_MS,
  );

  it(
    "container env and argv through the runtime; script bodies byte-exact in payload.sh",
    async () => {
      const image = join(root, "x.sif");
      await writeFile(image, "");
      const fakeRuntime = join(root, "fake-apptainer.cjs");
      await writeFile(
        fakeRuntime,
        `#!${NODE}\nprocess.stdout.write(JSON.stringify({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }));\n`,
        { mode: 0o755 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(nasty(), { maxLength: 4 }),
          fc.dictionary(envName, nasty(), { maxKeys: 3 }),
          fc.dictionary(envName, nasty(), { maxKeys: 3 }),
          nasty(60),
          async (args, rawEnv, rawCenv, body) => {
            const env = probeSafe(rawEnv);
            const cenv = probeSafe(rawCenv);
            const spec = { name: "c", command: ["prog", ...args], env, container: { image, env: cenv } };
            const outcome = await renderAndRun(spec, undefined, fakeRuntime);
            if (!("refused" in outcome)) {
              ran.container++;
              const { probe, jobDir } = outcome;
              expect(probe.argv).toEqual([
                "exec",
                "--bind",
                jobDir,
                "--pwd",
                jobDir,
                "--bind",
                join(root, JOB_ID, "checkpoint"),
                image,
                "prog",
                ...args,
              ]);
              for (const [k, v] of Object.entries({ ...env, ...cenv })) {
                expect(probe.env[k]).toBe(v);
              }
            }
            const scriptSpec = JobSpec.safeParse({ name: "s", script: body });
            if (scriptSpec.success && !/\p{Cs}/u.test(body)) {
              const render = (script: string) =>
                renderBatchScript({
                  lease: { jobId: JOB_ID, attempt: 1, spec: { ...scriptSpec.data, script } },
                  jobDir: "/x/y",
                  secretsFile: null,
                  apptainerBin: "apptainer",
                });
              const job = render(body);
              expect(job.files.find((f) => f.name === "payload.sh")?.data.toString("utf8")).toBe(body);
              // The body never influences the script text itself.
              expect(job.script).toBe(render("").script);
            }
          },
        ),
        { numRuns: Math.ceil(NUM_RUNS / 2) },
      );
      expect(ran.container).toBeGreaterThan(NUM_RUNS * 0.1);
    },
    TIMEOUT_MS,
  );

  it(
    "sweep elements of one array: each task gets exactly its own element's argv and env from the per-index data",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.array(nasty(), { maxLength: 4 }), fc.dictionary(envName, nasty(), { maxKeys: 4 })), {
            minLength: 2,
            maxLength: 3,
          }),
          async (elements) => {
            const specs = elements.map(([args, rawEnv], i) => ({
              name: `e-${i}`,
              command: [NODE, PROBE, ...args],
              env: probeSafe(rawEnv),
            }));
            if (!specs.every((spec) => JobSpec.safeParse(spec).success)) {
              return;
            }
            let batch: Awaited<ReturnType<typeof writeBatch>>;
            try {
              batch = await writeBatch(join(root, `batch${n++}`), specs);
            } catch (err) {
              if (err instanceof RenderError) {
                return;
              }
              throw err;
            }
            ran.batch++;
            await bashSyntaxCheck(batch.script);
            for (const [i, spec] of specs.entries()) {
              const jobDir = batch.jobDirs[i]!;
              const task = await runTask(batch, i, jobDir);
              expect(task.code, `${task.early}${task.stderr}`).toBe(0);
              const probe = JSON.parse(task.stdout ?? "") as ProbeOutput;
              expect(probe.argv).toEqual(spec.command.slice(2));
              expect(probe.cwd).toBe(jobDir);
              expect(probe.env.SLURMGATE_JOB_ID).toBe(elementJobId(i));
              for (const [k, v] of Object.entries(spec.env)) {
                expect(probe.env[k]).toBe(v);
              }
              for (const k of Object.keys(probe.env)) {
                expect(Object.hasOwn(spec.env, k) || isBaselineEnv(k), `unexpected variable ${k}`).toBe(true);
              }
            }
          },
        ),
        { numRuns: Math.ceil(NUM_RUNS / 3) },
      );
      expect(ran.batch).toBeGreaterThan(NUM_RUNS * 0.05);
    },
    TIMEOUT_MS,
  );
});
