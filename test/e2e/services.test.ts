/**
 * Services beside the payload on real Slurm (seed 001: a model server and an evaluation harness in
 * one allocation): the service starts first, the payload reaches it through
 * SLURMGATE_SERVICE_<NAME>_URL, it is gone after the job, a service that never opens its port or
 * dies under the payload fails the job as `service_unhealthy`, two jobs on one node get different
 * ports, a service's secret never reaches the payload, and hostile specs are refused.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.ts";
import { runCli } from "../cli/support.ts";
import { type E2E, slurmClusters, startE2E } from "./harness.ts";

const NODE = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
const shared = slurmClusters().alpha.sharedRoot;
const SECRET = `svc-${Math.random().toString(36).slice(2)}-secret`;
const RUN = Math.random().toString(36).slice(2, 8);
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E();
  const secrets = join(mkdtempSync(join(tmpdir(), "slurmgate-secrets-")), "secrets.env");
  writeFileSync(secrets, `MODEL_TOKEN=${SECRET}\n`, { mode: 0o600 });
  chmodSync(secrets, 0o600);
  e2e.startAgent("alpha", { SLURMGATE_SECRETS_FILE: secrets });
  await e2e.waitClustersAlive(60_000, ["alpha"]);
});

afterAll(async () => {
  await e2e?.close();
});

/** A tiny model server on $PORT; the comment is a marker pgrep can find. */
const server = (mark: string) =>
  `/*${mark}*/require("http").createServer((q,s)=>{console.log("served "+q.url);` +
  `s.end(JSON.stringify({model:"tiny",path:q.url,token:process.env.MODEL_TOKEN===${JSON.stringify(SECRET)}}))}).listen(+process.env.PORT,"127.0.0.1")`;

function running(mark: string): boolean {
  try {
    execFileSync("pgrep", ["-f", mark]);
    return true;
  } catch {
    return false;
  }
}

/** A service's stdout through the logs API, once the agent has shipped all of it. */
async function serviceLog(id: string, service: string): Promise<{ status: number; data?: string }> {
  for (let i = 0; ; i++) {
    const res = await fetch(`${e2e.url}/v1/jobs/${id}/logs?service=${service}&stream=stdout`, {
      headers: { authorization: `Bearer ${e2e.alice}` },
    });
    const body = (await res.json()) as { data?: string; complete?: boolean };
    if (res.status !== 200 || body.complete || i >= 60) {
      return { status: res.status, data: body.data };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `slurmgate logs --service`, the real binary: the same bytes as the API, and one line for a wrong name. */
async function checkCliServiceLog(id: string, out: string, err: string): Promise<void> {
  const env = {
    SLURMGATE_URL: e2e.url,
    SLURMGATE_TOKEN: e2e.alice,
    XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "slurmgate-cli-")),
  };
  expect(await runCli(["logs", id, "--service", "model"], { env })).toEqual({ code: 0, stdout: out, stderr: "" });
  expect(await runCli(["logs", "-f", id, "--service", "model"], { env })).toEqual({ code: 0, stdout: out, stderr: "" });
  expect(await runCli(["logs", id, "--service", "model", "--stderr"], { env })).toMatchObject({ code: 0, stdout: err });
  const unknown = await runCli(["logs", "-f", id, "--service", "nope"], { env });
  expect(unknown.code).toBe(1);
  expect(unknown.stdout).toBe("");
  expect(unknown.stderr).toMatch(/^slurmgate: .*service nope: the job has no such service.*\n$/);
  const malformed = await runCli(["logs", id, "--service", "Model;rm"], { env });
  expect(malformed.code).toBe(2);
  expect(malformed.stderr.trim().split("\n")[0]).toContain("--service");
  expect((await runCli(["logs", id, "--service", "model", "--task", "1"], { env })).code).toBe(2);
}

/** The evaluation harness: asks the server, prints and saves the answer, says whether it sees the secret. */
const HARNESS = [
  `answer=$(${NODE} -e 'fetch(process.env.SLURMGATE_SERVICE_MODEL_URL+"/v1/models").then(r=>r.text()).then(t=>process.stdout.write(t))')`,
  'echo "answer $answer"',
  'echo "port $SLURMGATE_SERVICE_MODEL_PORT"',
  'echo "payload sees token: [$MODEL_TOKEN]"',
  'printf %s "$answer" > "$SLURMGATE_RESULT"',
].join("\n");

describe("services beside the payload on real Slurm", () => {
  it("starts the server first, the payload uses it through its URL, and nothing is left after", async () => {
    const marks = [`sg-e2e-svc-a-${RUN}`, `sg-e2e-svc-b-${RUN}`];
    // Two at once: on one node they must get different ports.
    const jobs = await Promise.all(
      marks.map((mark, i) =>
        e2e.submit(e2e.alice, {
          name: `eval-${i}`,
          cluster: "alpha",
          resources: { time: "5m" },
          script: `${HARNESS}\nsleep 3`,
          services: [
            {
              name: "model",
              command: [NODE, "-e", server(mark)],
              secrets: ["MODEL_TOKEN"],
              health: { http: "/health" },
              timeoutSeconds: 60,
            },
          ],
        }),
      ),
    );
    const done = await Promise.all(jobs.map((j) => e2e.waitTerminal(e2e.alice, j.id, 240_000)));
    const ports: string[] = [];
    const client = createClient({ baseUrl: e2e.url, token: e2e.alice });
    for (const [i, job] of done.entries()) {
      expect(job, JSON.stringify(job)).toMatchObject({ state: "completed", exitCode: 0 });
      const out = await e2e.logs(e2e.alice, job.id);
      expect(out).toContain('answer {"model":"tiny","path":"/v1/models","token":true}');
      expect(out).toContain("payload sees token: []");
      expect(job.result).toEqual({ model: "tiny", path: "/v1/models", token: true });
      ports.push(/port (\d+)/.exec(out)?.[1] ?? "");
      expect(running(marks[i]!)).toBe(false);
      // The service's own log, in the job directory beside the payload's, and through the logs API.
      const log = readFileSync(join(shared, "alice", job.id, "service-model.out"), "utf8");
      expect(log).toContain("served /v1/models");
      expect(await serviceLog(job.id, "model")).toMatchObject({ status: 200, data: log });
      // The typed client reads it the same way, to the end.
      let text = "";
      for await (const part of client.logs(job.id, { service: "model", follow: true })) {
        text += part;
      }
      expect(text).toBe(log);
      expect(await serviceLog(job.id, "nope")).toMatchObject({ status: 422 });
      if (i === 0) {
        await checkCliServiceLog(job.id, log, readFileSync(join(shared, "alice", job.id, "service-model.err"), "utf8"));
      }
    }
    expect(ports[0]).toMatch(/^\d+$/);
    expect(ports[0]).not.toBe(ports[1]);
  });

  it("fails the job as service_unhealthy, saying which service and how long, when the port never opens", async () => {
    const mark = `sg-e2e-svc-never-${RUN}`;
    const job = await e2e.submit(e2e.alice, {
      name: "never-healthy",
      cluster: "alpha",
      resources: { time: "5m" },
      command: ["echo", "payload ran"],
      services: [
        {
          name: "model",
          command: [NODE, "-e", `/*${mark}*/console.error("CUDA out of memory");setInterval(()=>{},1000)`],
          health: { tcp: true },
          timeoutSeconds: 3,
        },
      ],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 180_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "failed", code: "service_unhealthy" });
    expect(done.reason).toMatch(/service model did not become healthy .* within 3s; stderr: CUDA out of memory/);
    expect(await e2e.logs(e2e.alice, job.id)).not.toContain("payload ran");
    expect(running(mark)).toBe(false);
  });

  it("stops the payload rather than leaving it hung when the service dies under it", async () => {
    const job = await e2e.submit(e2e.alice, {
      name: "server-crash",
      cluster: "alpha",
      resources: { time: "5m" },
      command: ["sleep", "120"],
      services: [
        {
          name: "model",
          command: [
            NODE,
            "-e",
            'require("net").createServer().listen(+process.env.PORT);setTimeout(()=>process.exit(7),2000)',
          ],
          health: { tcp: true },
          timeoutSeconds: 30,
        },
      ],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 100_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "failed", code: "service_unhealthy" });
    expect(done.reason).toContain("service model stopped while the payload ran");
  });

  it("splits the job's GPUs on the real gpu partition: the service sees its own, the payload the rest", async () => {
    // alpha's node has two fake a100s (device files); Slurm lists both in CUDA_VISIBLE_DEVICES and SLURM_JOB_GPUS.
    const seen = (who: string) =>
      `printf '%s|%s' "$CUDA_VISIBLE_DEVICES" "$SLURM_JOB_GPUS" > "$SLURMGATE_JOB_DIR/gpus-${who}"`;
    const job = await e2e.submit(e2e.alice, {
      name: "gpu-split",
      cluster: "alpha",
      partition: "gpu",
      resources: { gpus: { count: 2, type: "a100" }, time: "5m" },
      script: seen("payload"),
      services: [
        {
          name: "vllm",
          command: [
            "/bin/bash",
            "-c",
            `${seen("vllm")}; exec ${NODE} -e 'require("net").createServer().listen(+process.env.PORT,"127.0.0.1")'`,
          ],
          health: { tcp: true },
          timeoutSeconds: 60,
          gpus: 1,
        },
      ],
    });
    const done = await e2e.waitTerminal(e2e.alice, job.id, 240_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: "completed", exitCode: 0 });
    const dir = join(shared, "alice", job.id);
    const service = readFileSync(join(dir, "gpus-vllm"), "utf8").split("|");
    const payload = readFileSync(join(dir, "gpus-payload"), "utf8").split("|");
    expect(service).toEqual(["0", "0"]);
    expect(payload).toEqual(["1", "1"]);
  });

  it("refuses services that take more GPUs than the job asks for, naming the service's field", async () => {
    const svc = { name: "vllm", command: ["x"], health: { tcp: true }, timeoutSeconds: 5 };
    const res = await fetch(`${e2e.url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "refused",
        cluster: "alpha",
        partition: "gpu",
        resources: { gpus: { count: 2, type: "a100" } },
        command: ["true"],
        services: [
          { ...svc, gpus: 1 },
          { ...svc, name: "judge", gpus: 2 },
        ],
      }),
    });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const problem = (await res.json()) as { errors?: { field: string; message: string }[] };
    expect(problem.errors).toContainEqual(
      expect.objectContaining({
        field: "body.services.1.gpus",
        message: expect.stringContaining("services take 3 GPUs but the job asks for 2"),
      }),
    );
  });

  it("refuses hostile service specs, naming the field", async () => {
    const ok = { name: "model", command: ["x"], health: { tcp: true }, timeoutSeconds: 5 };
    const cases: [unknown, string][] = [
      [[{ ...ok, gpu: true }], "services.0"],
      [[{ ...ok, name: "Model" }], "services.0.name"],
      [[ok, ok], "services.1.name"],
      [[{ ...ok, port: 80 }], "services.0.port"],
      [[{ ...ok, health: { http: "/x y" } }], "services.0.health"],
    ];
    for (const [services, field] of cases) {
      const res = await fetch(`${e2e.url}/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${e2e.alice}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "refused", cluster: "alpha", command: ["true"], services }),
      });
      const text = await res.text();
      expect(res.status, text).toBe(422);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(text).toContain(field);
    }
  });
});
