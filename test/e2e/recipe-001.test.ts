/**
 * Recipe 001 (docs/recipes/001-eval-with-model-server.ts) run as written on the real test clusters,
 * with stand-ins for vLLM and the harness (Node one-liners in stand-in images): the harness must reach
 * the server through the URL the recipe hands it, the server must get the token and the deployment
 * env and the harness neither, the scores come back in task order, and the server's log is its own
 * stream. A server that never comes up ends the job `service_unhealthy` before the harness runs.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { run } from "../../docs/recipes/001-eval-with-model-server.ts";
import { type E2E, REPO, slurmClusters, startE2E } from "./harness.ts";

const NODE = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
const shared = slurmClusters().alpha.sharedRoot;
const tag = Math.random().toString(36).slice(2, 8);
const TOKEN = `hf-${tag}-secret`;
let images: { serving: string; harness: string };
let e2e: E2E;

/** Stands in for `vllm serve MODEL --served-model-name NAME --port PORT`. */
const SERVER = [
  "const a=process.argv.slice(1),arg=n=>a[a.indexOf(n)+1];",
  'require("http").createServer((q,s)=>{let b="";q.on("data",d=>b+=d);q.on("end",()=>{console.log(q.method+" "+q.url+" "+b);',
  'if(q.url==="/health"){s.end("ok");return}',
  `s.end(JSON.stringify({served:arg("--served-model-name"),source:a[0],token:process.env.HF_TOKEN===${JSON.stringify(TOKEN)},`,
  "deployment:process.env.VLLM_WORKER_MULTIPROC_METHOD??null,evaluation:process.env.EVAL_LOG_SAMPLES??null}))})",
  '}).listen(+arg("--port"),"127.0.0.1")',
].join("");

/** Stands in for the harness: asks the endpoint once per task, writes the scores where it is told. */
const HARNESS = [
  "const a=process.argv.slice(1),arg=n=>a[a.indexOf(n)+1];(async()=>{const scores=[];let server;",
  'for(const task of arg("--tasks").split(",")){',
  'const r=await fetch(arg("--model-url"),{method:"POST",body:JSON.stringify({task})});server=await r.json();',
  "scores.push({task,score:task.length})}",
  'require("fs").writeFileSync(arg("--output"),JSON.stringify({model:arg("--model"),scores,server,',
  "harness:{token:process.env.HF_TOKEN??null,deployment:process.env.VLLM_WORKER_MULTIPROC_METHOD??null,evaluation:process.env.EVAL_LOG_SAMPLES??null}}))",
  "})().catch(e=>{console.error(e);process.exit(1)})",
].join("");

beforeAll(async () => {
  mkdirSync(join(shared, "images"), { recursive: true });
  images = {
    serving: join(shared, "images", `vllm-${tag}.sif`),
    harness: join(shared, "images", `eval-harness-${tag}.sif`),
  };
  writeFileSync(images.serving, "");
  writeFileSync(images.harness, "");
  const secrets = join(mkdtempSync(join(tmpdir(), "slurmgate-secrets-")), "secrets.env");
  writeFileSync(secrets, `HF_TOKEN=${TOKEN}\n`, { mode: 0o600 });
  chmodSync(secrets, 0o600);
  e2e = await startE2E();
  const env = { SLURMGATE_SECRETS_FILE: secrets, SLURMGATE_APPTAINER: join(REPO, "test/e2e/bin/apptainer") };
  e2e.startAgent("alpha", env);
  e2e.startAgent("beta", env);
  await e2e.waitClustersAlive();
});

afterAll(async () => {
  await e2e?.close();
  for (const image of Object.values(images ?? {})) {
    rmSync(image, { force: true });
  }
});

const testOptions = () => ({
  gpusPerNode: 1,
  time: "5m",
  servingImage: images.serving,
  serve: [NODE, "-e", SERVER, "--"],
  harnessImage: images.harness,
  evaluate: [NODE, "-e", HARNESS, "--"],
  startupSeconds: 60,
});

describe("recipe 001: an evaluation beside its model server", () => {
  it("serves the model, runs the harness against it, and returns the scores in task order", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const { job, result, serverLog } = await run(client, testOptions());

    expect(job, JSON.stringify(job)).toMatchObject({ state: "completed", exitCode: 0, code: null });
    expect(result).toEqual({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      scores: [
        { task: "hellaswag", score: 9 },
        { task: "arc_challenge", score: 13 },
        { task: "winogrande", score: 10 },
      ],
      // The server got its own env and the token; the harness's env stayed with the harness.
      server: {
        served: "meta-llama/Llama-3.1-8B-Instruct",
        source: "meta-llama/Llama-3.1-8B-Instruct",
        token: true,
        deployment: "spawn",
        evaluation: null,
      },
      harness: { token: null, deployment: null, evaluation: "true" },
    });
    // The harness reached the server at the URL the recipe passed, once per task.
    expect(serverLog).toContain("GET /health");
    for (const task of ["hellaswag", "arc_challenge", "winogrande"]) {
      expect(serverLog).toContain(`POST /v1/chat/completions {"task":"${task}"}`);
    }
    expect(serverLog).not.toContain(TOKEN);
  }, 300_000);

  it("serves a checkpoint from shared storage, bound read-only into the server", async () => {
    const checkpoint = mkdtempSync(join(shared, "checkpoint-"));
    try {
      const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
      const { job, result } = await run(client, { ...testOptions(), checkpoint, tasks: ["gsm8k"] });
      expect(job.state).toBe("completed");
      expect(result).toMatchObject({ server: { served: "meta-llama/Llama-3.1-8B-Instruct", source: checkpoint } });
      // What the job's fixed wrapper ran for the server: its own image, the checkpoint bound read-only.
      const items = readFileSync(join(shared, "alice", job.id, "services.nul"), "utf8").split("\0");
      expect(items).toContain(images.serving);
      expect(items.join(" ")).toContain(`--bind ${checkpoint}:${checkpoint}:ro`);
    } finally {
      rmSync(checkpoint, { recursive: true, force: true });
    }
  }, 300_000);

  it("ends as service_unhealthy, naming the server and quoting its stderr, when it never comes up", async () => {
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    const crash = [NODE, "-e", 'console.error("CUDA error: out of memory");process.exit(1)', "--"];
    const { job, result } = await run(client, { ...testOptions(), serve: crash, startupSeconds: 20 });
    expect(job, JSON.stringify(job)).toMatchObject({ state: "failed", code: "service_unhealthy" });
    expect(job.reason).toMatch(/^service model .*CUDA error: out of memory/);
    expect(result).toBeNull();
  }, 300_000);
});
