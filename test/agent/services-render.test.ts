/**
 * Services beside the payload, rendered and run with plain bash (no Slurm): the data file's shape,
 * refusals of what a compromised gateway could send, and the wrapper starting, checking, exporting
 * and stopping services, with env and secrets kept to the part they were meant for.
 */
import { TEMPLATE_VERSION } from "../../agent/render/template.ts";
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { access, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNulList } from "../../agent/render/data-files.ts";
import { RenderError } from "../../agent/render/errors.ts";
import { type RenderInput, renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { JobSpec, type JobSpecInput } from "../../schemas/job.ts";
import { NODE, bashSyntaxCheck, runBatchScript, writeJob } from "./helpers/run-rendered.ts";

const JOB_ID = "job_0123456789abcdefghij";
let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sg-services-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A tiny HTTP server on $PORT that answers with what it can see; MARK makes it findable with pgrep. */
const server = (mark: string) =>
  `/*${mark}*/require("http").createServer((q,s)=>{s.end(JSON.stringify({url:q.url,secret:process.env.SVC_SECRET??null,payloadEnv:process.env.ONLY_PAYLOAD??null,own:process.env.OWN??null}))}).listen(+process.env.PORT,"127.0.0.1")`;
const FETCH = `fetch(process.env.SLURMGATE_SERVICE_MODEL_API_URL+"/v1/models").then(r=>r.text()).then(t=>console.log(t))`;

function input(spec: Partial<JobSpecInput>, jobDir: string, extra: Partial<RenderInput> = {}): RenderInput {
  return {
    lease: { jobId: JOB_ID, attempt: 1, spec: { name: "t", ...spec } as RenderInput["lease"]["spec"] },
    jobDir,
    secretsFile: null,
    apptainerBin: "apptainer",
    ...extra,
  };
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

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function alive(mark: string): boolean {
  try {
    execFileSync("pgrep", ["-f", mark]);
    return true;
  } catch {
    return false;
  }
}

async function run(name: string, spec: Partial<JobSpecInput>, serviceSecrets?: Record<string, string>) {
  const jobDir = join(root, name);
  const serviceSecretsFile = serviceSecrets ? join(jobDir, "service-secrets.nul") : null;
  const job = renderBatchScript(input(spec, jobDir, { serviceSecretsFile }));
  const script = await writeJob(jobDir, job);
  if (serviceSecretsFile && serviceSecrets) {
    const data = Object.entries(serviceSecrets).map(([k, v]) => `${k}=${v}\0`);
    await writeFile(serviceSecretsFile, data.join(""), { mode: 0o600 });
  }
  await bashSyntaxCheck(script);
  return { jobDir, job, result: await runBatchScript(script) };
}

describe("services.nul", () => {
  it("carries every field as NUL items, none of them in the script text", () => {
    const jobDir = join(root, "file");
    const job = renderBatchScript(
      input(
        {
          command: ["true"],
          services: [
            {
              name: "model-api",
              command: [NODE, "-e", "x $(id) 'q'"],
              env: { OWN: "v w" },
              secrets: ["SVC_SECRET"],
              health: { http: "/health?x=1" },
              timeoutSeconds: 30,
            },
            {
              name: "db",
              container: { image: "/images/db.sif" },
              port: 5432,
              binds: [{ src: "/data/db", readonly: true }],
              health: { tcp: true },
              timeoutSeconds: 5,
            },
          ],
        },
        jobDir,
        { serviceSecretsFile: join(jobDir, "service-secrets.nul") },
      ),
    );
    const file = job.files.find((f) => f.name === "services.nul");
    expect(file?.mode).toBe(0o600);
    expect(decodeNulList(file!.data)).toEqual([
      ...["model-api", "", "http", "/health?x=1", "30", "", ""],
      ...["3", NODE, "-e", "x $(id) 'q'", "1", "OWN=v w", "1", "SVC_SECRET", "0"],
      ...["db", "5432", "tcp", "", "5", "/images/db.sif", "", "0", "0", "0"],
      ...["8", "apptainer", "run", "--bind", "/data/db:/data/db:ro", "--bind", jobDir, "--pwd", jobDir],
    ]);
    expect(job.script).not.toContain("$(id)");
    expect(job.script).not.toContain("model-api");
    expect(job.script).toContain(`template v${TEMPLATE_VERSION}`);
  });

  it("is empty without services, so a stale one from an earlier attempt is overwritten", () => {
    const job = renderBatchScript(input({ command: ["true"] }, join(root, "none")));
    expect(job.files.find((f) => f.name === "services.nul")?.data.length).toBe(0);
  });

  it("refuses what a compromised gateway could send past the schema", () => {
    const dir = join(root, "bad");
    const svc = { name: "api", command: ["x"], health: { tcp: true as const }, timeoutSeconds: 5 };
    const cases: [Partial<JobSpecInput>, string][] = [
      [{ services: [{ ...svc, env: { APPTAINER_BIND: "/" } }] }, "services.0.env.APPTAINER_BIND"],
      [{ services: [{ ...svc, secrets: ["sg_dir"] }] }, "secrets.sg_dir"],
      [{ services: [{ ...svc, command: ["A=b", "x"] }] }, "services.0.command.0"],
      [{ services: [{ ...svc, name: "API" }] }, "services.0.name"],
      [{ services: [{ ...svc, health: { http: "/x\r\nHost: evil" } }] }, "services.0.health"],
      [{ services: [svc, { ...svc }] }, "services.1.name"],
    ];
    for (const [spec, field] of cases) {
      expect(refusal(() => renderBatchScript(input({ command: ["true"], ...spec }, dir))).field).toContain(field);
    }
    // Secrets asked for but no file written: the job must not start without them.
    const noFile = refusal(() =>
      renderBatchScript(input({ command: ["true"], services: [{ ...svc, secrets: ["K"] }] }, dir)),
    );
    expect(noFile.code).toBe("secret_missing");
  });
});

describe("JobSpec.services", () => {
  const ok = { name: "api", command: ["x"], health: { tcp: true }, timeoutSeconds: 5 };
  const fields = (services: unknown, extra: object = {}) => {
    const r = JobSpec.safeParse({ name: "t", command: ["true"], services, ...extra });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };

  it("accepts the seed-001 shape and refuses hostile ones, naming the field", () => {
    expect(
      fields([ok, { ...ok, name: "db-2", port: 1024, container: { image: "docker://x/y" }, command: undefined }]),
    ).toEqual([]);
    expect(fields([{ ...ok, extra: 1 }]).join()).toContain("services.0");
    expect(fields([{ ...ok, health: { tcp: true, http: "/x" } }]).join()).toContain("services.0.health");
    expect(fields([{ ...ok, name: "9lives" }]).join()).toContain("services.0.name");
    expect(fields([{ ...ok, name: "a".repeat(32) }]).join()).toContain("services.0.name");
    expect(fields([ok, ok]).join()).toContain("services.1.name: service name api is used twice");
    expect(fields([{ ...ok, port: 80 }]).join()).toContain("services.0.port");
    expect(fields([{ ...ok, port: 65_536 }]).join()).toContain("services.0.port");
    expect(fields([ok, { ...ok, name: "b", port: 2000 }, { ...ok, name: "c", port: 2000 }]).join()).toContain(
      "services.2.port",
    );
    expect(fields([{ ...ok, container: { image: "/i.sif" } }]).join()).toContain("services.0.command");
    expect(fields([{ ...ok, binds: [{ src: "/d" }] }]).join()).toContain("services.0.binds: binds need a container");
    expect(fields([{ ...ok, timeoutSeconds: 0 }]).join()).toContain("services.0.timeoutSeconds");
    expect(fields(Array.from({ length: 5 }, (_, i) => ({ ...ok, name: `s${i}` }))).join()).toContain("services");
    expect(fields([ok], { array: { indexes: "0-1" } }).join()).toContain("services: services cannot be combined");
  });

  it("lets services take some of the job's GPUs and refuses more than the job asks for, naming the service", () => {
    const gpus = (count: number) => ({ resources: { gpus: { count, type: "a100" } } });
    expect(fields([{ ...ok, gpus: 1 }], gpus(2))).toEqual([]);
    expect(fields([{ ...ok, gpus: 2 }], gpus(2))).toEqual([]);
    expect(
      fields(
        [
          { ...ok, gpus: 1 },
          { ...ok, name: "b", gpus: 2 },
        ],
        gpus(2),
      ),
    ).toEqual([
      "services.1.gpus: services take 3 GPUs but the job asks for 2 (resources.gpus.count); the payload gets the rest",
    ]);
    expect(fields([{ ...ok, gpus: 1 }])).toEqual([
      "services.0.gpus: the job asks for no GPUs (resources.gpus), so a service cannot take any",
    ]);
    // A profile may give the job its GPUs: the gateway checks the merged spec (routing.test.ts).
    expect(fields([{ ...ok, gpus: 1 }], { profile: "train" })).toEqual([]);
    expect(fields([{ ...ok, gpus: 0 }], gpus(1)).join()).toContain("services.0.gpus");
    expect(fields([{ ...ok, gpus: 1.5 }], gpus(2)).join()).toContain("services.0.gpus");
    expect(fields([{ ...ok, gpus: "1" }], gpus(2)).join()).toContain("services.0.gpus");
    // Beside another fault, both are named at once.
    expect(fields([{ ...ok, gpus: 3, typo: 1 }], gpus(2)).join()).toContain("services.0.gpus: services take 3");
  });
});

/** A service that writes the devices it sees to gpus-<name> in its working directory, then listens. */
const gpuService = (name: string, gpus?: number) => ({
  name,
  command: [
    NODE,
    "-e",
    `/*sg-svc-gpu-${process.pid}*/const e=process.env;require("fs").writeFileSync("gpus-${name}",[e.CUDA_VISIBLE_DEVICES,e.SLURM_JOB_GPUS,e.GPU_DEVICE_ORDINAL].join("|"));require("net").createServer().listen(+e.PORT,"127.0.0.1")`,
  ],
  health: { tcp: true as const },
  timeoutSeconds: 20,
  ...(gpus === undefined ? {} : { gpus }),
});
const SEEN = 'echo "$CUDA_VISIBLE_DEVICES|$SLURM_JOB_GPUS|$GPU_DEVICE_ORDINAL"';

describe("the wrapper splitting the job's GPUs between services and payload, run with bash", () => {
  const alloc = { CUDA_VISIBLE_DEVICES: "0,1,2,3", SLURM_JOB_GPUS: "4,5,6,7", GPU_DEVICE_ORDINAL: "0,1,2,3" };
  async function runGpus(name: string, services: object[], env: Record<string, string>) {
    const jobDir = join(root, name);
    const spec = { command: ["/bin/sh", "-c", SEEN], resources: { gpus: { count: 4 } }, services };
    const script = await writeJob(jobDir, renderBatchScript(input(spec as Partial<JobSpecInput>, jobDir)));
    return { jobDir, result: await runBatchScript(script, env) };
  }

  it("gives each service its own devices in order, the payload the rest, and a service without a share none", async () => {
    const { jobDir, result } = await runGpus(
      "gpu-split",
      [gpuService("vllm", 2), gpuService("cache"), gpuService("judge", 1)],
      alloc,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(jobDir, "gpus-vllm"), "utf8")).toBe("0,1|4,5|0,1");
    expect(await readFile(join(jobDir, "gpus-cache"), "utf8")).toBe("||");
    expect(await readFile(join(jobDir, "gpus-judge"), "utf8")).toBe("2|6|2");
    expect(result.stdout).toBe("3|7|3\n");
  });

  it("leaves every part the whole allocation when no service takes GPUs (as before)", async () => {
    const { jobDir, result } = await runGpus("gpu-none", [gpuService("vllm")], alloc);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(jobDir, "gpus-vllm"), "utf8")).toBe("0,1,2,3|4,5,6,7|0,1,2,3");
    expect(result.stdout).toBe("0,1,2,3|4,5,6,7|0,1,2,3\n");
  });

  it("fails before anything starts when Slurm gave fewer devices, none, or a list it cannot split", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { CUDA_VISIBLE_DEVICES: "0,1", SLURM_JOB_GPUS: "4,5" },
        /^wrapper_failed services take 3 GPUs but the allocation has 2 \(CUDA_VISIBLE_DEVICES=0,1\) on /,
      ],
      [{}, /^wrapper_failed services take 3 GPUs but Slurm set no device list \(CUDA_VISIBLE_DEVICES\) on /],
      [
        { CUDA_VISIBLE_DEVICES: "0,1,2,3 $(touch pwned)*" },
        /^wrapper_failed cannot split the GPUs between services and payload: CUDA_VISIBLE_DEVICES is /,
      ],
      [{ CUDA_VISIBLE_DEVICES: "0,,1,2" }, /^wrapper_failed cannot split the GPUs/],
    ];
    for (const [i, [env, failure]] of cases.entries()) {
      const { jobDir, result } = await runGpus(`gpu-bad-${i}`, [gpuService("vllm", 2), gpuService("judge", 1)], env);
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      expect(await readFile(join(jobDir, "failure"), "utf8")).toMatch(failure);
      await expect(stat(join(jobDir, "gpus-vllm"))).rejects.toThrow();
      await expect(stat(join(jobDir, "pwned"))).rejects.toThrow();
    }
    expect(alive(`sg-svc-gpu-${process.pid}`)).toBe(false);
  });

  it("refuses, as a compromised gateway might send, services taking GPUs from a job that has none", () => {
    const spec = { command: ["true"], profile: "train", services: [gpuService("vllm", 1)] };
    const err = refusal(() => renderBatchScript(input(spec as Partial<JobSpecInput>, join(root, "gpu-refused"))));
    expect(err).toMatchObject({ code: "invalid_spec", field: "services.0.gpus" });
    expect(err.message).toContain("the job asks for no GPUs");
  });
});

describe("the wrapper with services, run with bash", () => {
  it("starts the service first, exports its URL, keeps env and secrets per part, and stops it after", async () => {
    const mark = `sg-svc-ok-${process.pid}`;
    const { jobDir, result } = await run(
      "ok",
      {
        command: [NODE, "-e", `${FETCH};console.log("secret="+(process.env.SVC_SECRET??"none"))`],
        env: { ONLY_PAYLOAD: "p" },
        services: [
          {
            name: "model-api",
            command: [NODE, "-e", server(mark)],
            env: { OWN: "mine" },
            secrets: ["SVC_SECRET"],
            health: { http: "/health" },
            timeoutSeconds: 20,
          },
        ],
      },
      { SVC_SECRET: "s3cr3t $(id)" },
    );
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n");
    const answer = lines.find((l) => l.startsWith("{"));
    const secretLine = lines.find((l) => l.startsWith("secret="));
    expect(JSON.parse(answer!)).toEqual({ url: "/v1/models", secret: "s3cr3t $(id)", payloadEnv: null, own: "mine" });
    expect(secretLine).toBe("secret=none");
    expect(alive(mark)).toBe(false);
    // Read into the wrapper and gone before the payload ran: the payload cannot read it either.
    await expect(stat(join(jobDir, "service-secrets.nul"))).rejects.toThrow();
    expect(result.stderr).toBe("");
  });

  it("keeps the payload's own env and secrets from every service", async () => {
    const mark = `sg-svc-nosecret-${process.pid}`;
    const jobDir = join(root, "payload-secret");
    const secretsFile = join(jobDir, "secrets.nul");
    const job = renderBatchScript(
      input(
        {
          command: [NODE, "-e", `${FETCH};console.log("payload="+process.env.PAYLOAD_KEY)`],
          env: { ONLY_PAYLOAD: "p" },
          secrets: ["PAYLOAD_KEY"],
          services: [
            {
              name: "model-api",
              command: [
                NODE,
                "-e",
                `/*${mark}*/const e=process.env;require("http").createServer((q,s)=>s.end(JSON.stringify([e.PAYLOAD_KEY??null,e.ONLY_PAYLOAD??null,e.SLURMGATE_SECRETS_FILE??null]))).listen(+e.PORT,"127.0.0.1")`,
              ],
              health: { tcp: true },
              timeoutSeconds: 20,
            },
          ],
        },
        jobDir,
        { secretsFile },
      ),
    );
    const script = await writeJob(jobDir, job);
    await writeFile(secretsFile, "PAYLOAD_KEY=p-only $(id)\0", { mode: 0o600 });
    const result = await runBatchScript(script);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split("\n").sort()).toEqual(["", "[null,null,null]", "payload=p-only $(id)"]);
    expect(alive(mark)).toBe(false);
  });

  it("fails with service_unhealthy, the wait and the stderr tail when the port never opens", async () => {
    const mark = `sg-svc-never-${process.pid}`;
    const { jobDir, result } = await run("never", {
      command: [NODE, "-e", "console.log('payload ran')"],
      services: [
        {
          name: "slow",
          command: [NODE, "-e", `/*${mark}*/console.error("loading weights");setInterval(()=>{},1000)`],
          health: { tcp: true },
          timeoutSeconds: 2,
        },
      ],
    });
    expect(result.code).toBe(125);
    expect(result.stdout).not.toContain("payload ran");
    const failure = await readFile(join(jobDir, "failure"), "utf8");
    expect(failure).toMatch(
      /^service_unhealthy service slow did not become healthy \(tcp 127\.0\.0\.1:\d+\) within 2s; stderr: loading weights/,
    );
    expect(alive(mark)).toBe(false);
  });

  it("fails with service_unhealthy and its exit status when the service dies before it is healthy", async () => {
    const { jobDir, result } = await run("dies", {
      command: ["true"],
      services: [
        {
          name: "bad",
          command: [NODE, "-e", "console.error('no GPU');process.exit(3)"],
          health: { tcp: true },
          timeoutSeconds: 30,
        },
      ],
    });
    expect(result.code).toBe(125);
    expect(await readFile(join(jobDir, "failure"), "utf8")).toMatch(
      /^service_unhealthy service bad exited with status 3 after \d+s without becoming healthy .*stderr: no GPU/,
    );
  });

  it("stops the payload, instead of leaving it hung, when the service dies while it runs", async () => {
    const mark = `sg-svc-crash-${process.pid}`;
    const t0 = Date.now();
    const { jobDir, result } = await run("crash", {
      command: ["sleep", "25"],
      services: [
        {
          name: "flaky",
          command: [
            NODE,
            "-e",
            `/*${mark}*/require("net").createServer().listen(+process.env.PORT);setTimeout(()=>process.exit(1),1500)`,
          ],
          health: { tcp: true },
          timeoutSeconds: 10,
        },
      ],
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(result.code).toBe(125);
    expect(await readFile(join(jobDir, "failure"), "utf8")).toMatch(
      /^service_unhealthy service flaky stopped while the payload ran, so the payload was stopped \(status 143\)/,
    );
  });

  it("runs a service in its own container through the Apptainer stand-in, with the job directory bound", async () => {
    const jobDir = join(root, "contained");
    const image = join(root, "model.sif");
    await writeFile(image, "");
    const mark = `sg-svc-sif-${process.pid}`;
    const job = renderBatchScript(
      input(
        {
          command: [NODE, "-e", FETCH],
          services: [
            {
              name: "model-api",
              container: { image, command: [NODE, "-e", server(mark)] },
              health: { http: "/health" },
              timeoutSeconds: 20,
            },
          ],
        },
        jobDir,
        { apptainerBin: new URL("../e2e/bin/apptainer", import.meta.url).pathname },
      ),
    );
    const result = await runBatchScript(await writeJob(jobDir, job));
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).url).toBe("/v1/models");
    const argv = (await readFile(join(jobDir, "apptainer-argv.nul"), "utf8")).split("\0");
    expect(argv.slice(0, 6)).toEqual(["exec", "--bind", jobDir, "--pwd", jobDir, image]);
    expect(alive(mark)).toBe(false);
  });

  it("fails with image_missing, naming the service and the image, when its container image is not on the node", async () => {
    const image = join(root, "absent", "vllm.sif");
    const { jobDir, result } = await run("svc-no-image", {
      command: ["echo", "payload ran"],
      services: [{ name: "model", container: { image }, health: { tcp: true }, timeoutSeconds: 5 }],
    });
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(await readFile(join(jobDir, "failure"), "utf8")).toMatch(
      new RegExp(`^image_missing service model: container image ${image} does not exist or cannot be read on \\S+\n$`),
    );
  });

  it("stops the services when the job is cancelled (SIGTERM to the wrapper), ending 143", async () => {
    const mark = `sg-svc-cancel-${process.pid}`;
    const jobDir = join(root, "cancel");
    const started = join(jobDir, "payload-started");
    const job = renderBatchScript(
      input(
        {
          command: ["/bin/sh", "-c", `: >${started}; exec sleep 30`],
          services: [{ name: "api", command: [NODE, "-e", server(mark)], health: { tcp: true }, timeoutSeconds: 20 }],
        },
        jobDir,
      ),
    );
    const script = await writeJob(jobDir, job);
    const { spawn } = await import("node:child_process");
    // A slot of its own (313 → ports 30016-30047): below the kernel's ephemeral range and apart
    // from the 4242 every other rendered-script test uses, so no other file's service races for it.
    const child = spawn("bash", [script], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SLURM_JOB_ID: "313" },
      stdio: "ignore",
    });
    let exited = false;
    const closed = new Promise<number | null>((r) =>
      child.on("close", (c) => {
        exited = true;
        r(c);
      }),
    );
    // The payload starts only once the service is healthy: that, not a glimpse of the process, is
    // the moment a cancellation must find it running.
    for (let i = 0; i < 300 && !exited && !(await exists(started)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const failure = await readFile(join(jobDir, "failure"), "utf8").catch(() => "");
    expect(await exists(started), `the payload never started; failure: ${failure}`).toBe(true);
    expect(alive(mark)).toBe(true);
    child.kill("SIGTERM");
    expect(await closed).toBe(143);
    expect(alive(mark)).toBe(false);
  });

  it("refuses a fixed port that something else already holds, rather than health-checking a stranger", async () => {
    const busy = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => busy.once("listening", r));
    const port = (busy.address() as { port: number }).port;
    try {
      const { jobDir, result } = await run("busy", {
        command: ["true"],
        services: [{ name: "api", command: ["sleep", "30"], port, health: { tcp: true }, timeoutSeconds: 5 }],
      });
      expect(result.code).toBe(125);
      expect(await readFile(join(jobDir, "failure"), "utf8")).toContain(
        `service_unhealthy service api: port ${port} is already in use`,
      );
    } finally {
      busy.close();
    }
  });

  it("picks a free port from the job's range, skipping one in use, and stops both after the payload", async () => {
    // Slurm job id 4242 (the helper's) → the range starts at 20000 + 4242 % 1400 * 32.
    const base = 20_000 + (4242 % 1400) * 32;
    const busy = createServer().listen(base, "127.0.0.1");
    await new Promise((r, j) => busy.once("listening", r).once("error", j));
    const mark = `sg-svc-term-${process.pid}`;
    try {
      const { result } = await run("ports", {
        command: [
          "/bin/sh",
          "-c",
          'echo "$SLURMGATE_SERVICE_A_PORT $SLURMGATE_SERVICE_B_PORT $SLURMGATE_SERVICE_A_HOST"',
        ],
        services: ["a", "b"].map((name) => ({
          name,
          command: [NODE, "-e", server(`${mark}-${name}`)],
          health: { http: "/" },
          timeoutSeconds: 20,
        })),
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim()).toBe(`${base + 1} ${base + 2} 127.0.0.1`);
      expect(alive(mark)).toBe(false);
    } finally {
      busy.close();
    }
  });
});
