/**
 * The REST backend's parts, on answers captured from slurmrestd 22.05.8 (test/fixtures/slurmrestd):
 * requests carry every #SBATCH directive as a job property (22.05 ignores the script's own), answers
 * map to the same rows and codes as the CLI path, and a daemon that answers badly, slowly, hugely
 * or not at all is an unknown outcome, never a queued or a refused job.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import { Lane, inLane } from "../../agent/executor/lane.ts";
import { createSlurmCommands } from "../../agent/slurm-commands.ts";
import { createRestClient, parseRestTarget } from "../../agent/slurm-rest/client.ts";
import { createRestSlurmCommands } from "../../agent/slurm-rest/commands.ts";
import { restBackendChecks, restClientFor, restConfigProblem } from "../../agent/slurm-rest/from-config.ts";
import { buildRestSubmission, minutes, scriptDirectives } from "../../agent/slurm-rest/job-properties.ts";
import {
  expandTasks,
  listingTime,
  parseRestJobs,
  readCancelResponse,
  readSubmitResponse,
} from "../../agent/slurm-rest/responses.ts";
import { isUnknownOutcome } from "../../agent/slurm/result.ts";
import { buildDirectives } from "../../agent/render/directives.ts";
import { JobSpec } from "../../schemas/job.ts";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/slurmrestd/${name}`, import.meta.url), "utf8"));

const SCRIPT = [
  "#!/bin/bash",
  "#SBATCH --job-name=train",
  "#SBATCH --comment=slurmgate:job_0123456789abcdefghij:2",
  "#SBATCH --export=NONE",
  "#SBATCH --no-requeue",
  "#SBATCH --chdir=/scratch/a/job",
  "#SBATCH --output=/scratch/a/job/stdout.%a",
  "#SBATCH --error=/scratch/a/job/stderr.%a",
  "#SBATCH --partition=gpu",
  "#SBATCH --nodes=2",
  "#SBATCH --cpus-per-task=4",
  "#SBATCH --mem=4G",
  "#SBATCH --gres=gpu:a100:1",
  "#SBATCH --time=90",
  "#SBATCH --array=0-9%3",
  "#SBATCH --dependency=afterok:12:13",
  "#SBATCH --constraint=avx512",
  "set -eu",
  "#SBATCH --comment=not-a-directive-after-the-first-command",
  "echo hi",
  "",
].join("\n");

describe("buildRestSubmission", () => {
  it("sends every directive as a job property, since slurmrestd 22.05 ignores #SBATCH lines", () => {
    const { script, job } = buildRestSubmission(SCRIPT, ["--export=NONE"]);
    expect(script).toBe(SCRIPT);
    expect(job).toEqual({
      name: "train",
      comment: "slurmgate:job_0123456789abcdefghij:2",
      environment: { SLURM_EXPORT_ENV: "NONE" },
      requeue: false,
      current_working_directory: "/scratch/a/job",
      standard_output: "/scratch/a/job/stdout.%a",
      standard_error: "/scratch/a/job/stderr.%a",
      partition: "gpu",
      nodes: [2, 2],
      cpus_per_task: 4,
      memory_per_node: 4096,
      gres: "gpu:a100:1",
      time_limit: 90,
      array: "0-9%3",
      dependency: "afterok:12:13",
      constraints: "avx512",
    });
  });

  it("translates every option the renderer writes (a full spec), so none is lost", () => {
    const spec = JobSpec.parse({
      name: "all",
      cluster: "alpha",
      command: ["true"],
      partition: "short",
      account: "acct",
      qos: "normal",
      resources: { nodes: 1, ntasksPerNode: 2, cpusPerTask: 2, memPerCpu: "512M", gpus: { count: 1 }, time: "1h" },
      array: { indexes: "0-3", maxParallel: 2 },
      extraSbatchArgs: ["--constraint=x"],
    });
    const lines = buildDirectives({
      spec,
      jobId: "job_0123456789abcdefghij",
      attempt: 1,
      jobDir: "/scratch/j",
      workdir: "/scratch/j",
      dependsOnSlurmIds: [{ slurmJobId: "5", condition: "afterok" }],
      allowedSbatchArgs: ["--constraint"],
    });
    const { job } = buildRestSubmission(["#!/bin/bash", ...lines, "true"].join("\n"), []);
    expect(job).toMatchObject({
      account: "acct",
      qos: "normal",
      tasks_per_node: 2,
      memory_per_cpu: 512,
      gres: "gpu:1",
      time_limit: 60,
      array: "0-3%2",
      dependency: "afterok:5",
      constraints: "x",
      comment: "slurmgate:job_0123456789abcdefghij:1",
    });
  });

  it("lets command-line options win over directives, as sbatch does", () => {
    const { job } = buildRestSubmission("#!/bin/bash\n#SBATCH --partition=a\ntrue\n", [
      "--partition=b",
      "--begin=now+1day",
    ]);
    expect(job).toMatchObject({ partition: "b", begin_time: "now+1day" });
  });

  it("refuses what it cannot send instead of dropping it (the job would run differently)", () => {
    expect(() => buildRestSubmission("#!/bin/bash\n#SBATCH --nodelist=vm\ntrue\n", [])).toThrow(/--nodelist/);
    expect(() => buildRestSubmission("#!/bin/bash\ntrue\n", ["--uid=1001"])).toThrow(/another/);
    expect(() => buildRestSubmission("#!/bin/bash\ntrue\n", ["--export=ALL"])).toThrow(/NONE/);
    expect(() => buildRestSubmission("#!/bin/bash\n#SBATCH --mem=lots\ntrue\n", [])).toThrow(/memory/);
    expect(() => buildRestSubmission("#!/bin/bash\n#SBATCH --nodes=two\ntrue\n", [])).toThrow(/node count/);
    expect(() => buildRestSubmission("#!/bin/bash\n#SBATCH --time=forever\ntrue\n", [])).toThrow(/time/);
  });

  it("carries hostile characters as data: JSON-encoded, never reinterpreted", () => {
    const { job } = buildRestSubmission('#!/bin/bash\n#SBATCH --job-name=a"b\\\ntrue\n', ['--comment=x"},"uid":0']);
    expect(job.name).toBe('a"b\\');
    expect(job.comment).toBe('x"},"uid":0');
    expect(JSON.parse(JSON.stringify(job))).toEqual(job);
    expect(Object.keys(job).sort()).toEqual(["comment", "environment", "name"]);
  });

  it("reads directives only until the first command, and never a comment hidden later in the script", () => {
    expect(scriptDirectives(SCRIPT)).not.toContain("--comment=not-a-directive-after-the-first-command");
    expect(scriptDirectives("#!/bin/bash\n\n# note\n#SBATCH --job-name=x\n")).toEqual(["--job-name=x"]);
    expect(scriptDirectives("#SBATCH --job-name=first-line-is-the-shebang\n")).toEqual([]);
    expect(scriptDirectives("#!/bin/bash\r\n#SBATCH --job-name=crlf\r\n#SBATCH --time=5")).toEqual([
      "--job-name=crlf",
      "--time=5",
    ]);
  });

  it("reads the same directives as a whole-script split, whatever the lines and line ends", () => {
    const bySplit = (script: string) => {
      const options: string[] = [];
      for (const line of script.split(/\r?\n/).slice(1)) {
        const trimmed = line.trim();
        if (trimmed !== "" && !trimmed.startsWith("#")) {
          break;
        }
        const m = /^#SBATCH\s+(\S+)/.exec(trimmed);
        if (m?.[1]) {
          options.push(m[1]);
        }
      }
      return options;
    };
    const line = fc.constantFrom(
      "#SBATCH --job-name=a",
      "#SBATCH  --time=5 x",
      "# c",
      "",
      "  ",
      "true",
      "#SBATCH",
      "\r",
      "x\ry",
    );
    const end = fc.constantFrom("\n", "\r\n", "\r", "");
    fc.assert(
      fc.property(fc.array(fc.tuple(line, end), { maxLength: 12 }), (parts) => {
        const script = parts.map(([l, e]) => l + e).join("");
        expect(scriptDirectives(script)).toEqual(bySplit(script));
      }),
      { numRuns: 2_000 },
    );
  });

  it("reads Slurm's time formats in minutes", () => {
    expect(["5", "5:30", "1:00:00", "1-0", "1-2:3", "0-0:0:1"].map((t) => minutes(t))).toEqual([
      5, 6, 60, 1_440, 1_563, 1,
    ]);
  });
});

describe("readSubmitResponse (captured answers)", () => {
  it("a job id is a queued job", () => {
    expect(readSubmitResponse(fixture("submit-ok.json"))).toEqual({
      ok: true,
      value: { slurmJobId: "20676", warning: undefined },
    });
  });

  it("a job id with an error is still queued: the error is a warning", () => {
    const read = readSubmitResponse(fixture("submit-queued-with-error.json"));
    expect(read).toEqual({
      ok: true,
      value: { slurmJobId: "20677", warning: "Requested partition configuration not available now" },
    });
  });

  it("slurmctld's refusals map to the CLI path's codes", () => {
    expect(readSubmitResponse(fixture("submit-invalid-partition.json"))).toMatchObject({
      ok: false,
      code: "slurm_invalid_partition",
      retryable: false,
    });
    expect(readSubmitResponse(fixture("submit-bad-gres.json"))).toMatchObject({
      ok: false,
      code: "slurm_node_config",
    });
    expect(
      readSubmitResponse({
        status: 500,
        body: {
          errors: [{ error: "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)" }],
        },
      }),
    ).toMatchObject({ ok: false, code: "backpressure", retryable: true });
    expect(
      readSubmitResponse({
        status: 500,
        body: { errors: [{ error: "Unable to contact slurm controller (connect failure)" }] },
      }),
    ).toMatchObject({ ok: false, code: "transient", retryable: true });
  });

  it("a request the daemon could not read reached no controller: refused, not retried", () => {
    expect(readSubmitResponse(fixture("submit-no-environment.json"))).toMatchObject({
      ok: false,
      code: "invalid_argument",
      retryable: false,
    });
  });

  it("a daemon that turns the agent away (credentials, no v0.0.38) gives the job back: never a refusal of the job", () => {
    for (const status of [401, 403, 404]) {
      const read = readSubmitResponse({ status, body: { errors: [{ error: "Authentication failure" }] } });
      expect(read).toMatchObject({ ok: false, code: "backpressure", retryable: true });
    }
  });

  it("an answer with neither id nor error, or a corrupt id, is an unknown outcome", () => {
    for (const body of [{}, { job_id: "12; rm -rf /" }, { job_id: -1 }, { job_id: 1.5 }, null, [], "x"]) {
      const read = readSubmitResponse({ status: 500, body });
      expect(read.ok).toBe(false);
      expect(!read.ok && isUnknownOutcome(read.code)).toBe(true);
    }
  });
});

describe("parseRestJobs (captured GET /slurm/v0.0.38/jobs)", () => {
  const rows = parseRestJobs(fixture("jobs-v0.0.38.json"));

  it("gives the rows squeue -r gives: finished, pending with a reason, and a pending array one row per task", () => {
    expect(rows.map((r) => [r.slurmJobId, r.rawJobId, r.state, r.jobState, r.reason, r.partition])).toEqual([
      ["19771", "19771", "FAILED", "failed", "NonZeroExitCode", "cpu"],
      ["20672", "20672", "PENDING", "pending", "PartitionTimeLimit", "short"],
      ...[0, 1, 2, 3, 7].map((t) => [`20674_${t}`, "20674", "PENDING", "pending", "BeginTime", "short"]),
    ]);
    expect(rows[2]).toMatchObject({ arrayJobId: "20674", arrayTaskId: "0" });
    expect(rows[0]?.submitTime).toBe(new Date(1796044455 * 1000).toISOString().slice(0, 19));
  });

  it("keeps a hostile comment exactly (quotes, newline, pipe), so a tag match is exact", () => {
    expect(rows.find((r) => r.slurmJobId === "20674_7")?.comment).toBe('a "q"\nx|y');
    expect(rows[0]?.comment).toBeNull();
  });

  it("ignores other users' jobs: another user cannot plant our tag", () => {
    expect(parseRestJobs(fixture("jobs-v0.0.38.json"), "sg-bob")).toEqual([]);
    expect(parseRestJobs(fixture("jobs-v0.0.38.json"), "sg-alice")).toHaveLength(rows.length);
  });

  it("skips corrupt records and unknown states, never guessing a terminal state", () => {
    const parsed = parseRestJobs({
      jobs: [
        null,
        7,
        { job_id: "12" },
        { job_id: 12, job_state: "WEIRD", comment: 5 },
        { job_id: 13, array_job_id: 13, array_task_string: "0-x" },
      ],
    });
    expect(parsed.map((r) => [r.slurmJobId, r.jobState, r.comment])).toEqual([
      ["12", null, null],
      ["13", null, null],
    ]);
    expect(parseRestJobs({ jobs: "nope" })).toEqual([]);
    expect(parseRestJobs("<html>")).toEqual([]);
  });

  it("expands array task strings, refusing unreadable and absurd ones", () => {
    expect(expandTasks("0-3,7%2")).toEqual([0, 1, 2, 3, 7]);
    expect(expandTasks("1-9:4")).toEqual([1, 5, 9]);
    expect(expandTasks("5-1")).toEqual([]);
    expect(expandTasks("0-9999999,0-9999999")).toEqual([]);
  });
});

describe("readCancelResponse", () => {
  it("an id Slurm no longer knows is gone (cancelling is idempotent)", () => {
    expect(readCancelResponse({ status: 500, body: fixture("cancel-unknown.json") })).toBe("gone");
    expect(readCancelResponse({ status: 200, body: { errors: [] } })).toBeNull();
    expect(readCancelResponse({ status: 500, body: { errors: [{ error: "Access/permission denied" }] } })).toMatch(
      /permission/,
    );
  });
});

describe("the client and the commands against a daemon that misbehaves", () => {
  let server: Server | undefined;
  const dir = join(tmpdir(), `sg-rest-unit-${process.pid}`);
  const socketPath = join(`${dir}.sock`);
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
    rmSync(socketPath, { force: true });
  });

  const serve = async (handler: Parameters<typeof createServer>[1]) => {
    rmSync(socketPath, { force: true });
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(socketPath, () => resolve()));
  };
  const cli = createSlurmCommands({
    executor: {
      run: async () => {
        throw new Error("no CLI in this test");
      },
    } as never,
    env: {},
    binDir: "",
    apptainer: "apptainer",
    timeoutMs: 1_000,
  });
  const rest = (timeoutMs = 2_000, maxBytes?: number) =>
    createRestSlurmCommands({
      client: createRestClient({ target: { socketPath }, timeoutMs, ...(maxBytes ? { maxBytes } : {}) }),
      cli,
      user: "sg-alice",
    });
  const script = `${dir}.sbatch`;
  writeFileSync(script, "#!/bin/bash\n#SBATCH --comment=slurmgate:job_0123456789abcdefghij:1\ntrue\n");

  it("posts JSON with a Content-Length, never chunked, and reads the job id", async () => {
    let seen: { headers: Record<string, unknown>; body: string } | undefined;
    await serve((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        seen = { headers: req.headers, body };
        res.end(JSON.stringify(fixture("submit-ok.json").body));
      });
    });
    const result = await rest().sbatch(script, ["--export=NONE"]);
    expect(result).toEqual({ ok: true, value: { slurmJobId: "20676", warning: undefined } });
    expect(seen?.headers["content-length"]).toBe(String(Buffer.byteLength(seen?.body ?? "")));
    expect(seen?.headers["transfer-encoding"]).toBeUndefined();
    expect(JSON.parse(seen?.body ?? "{}").job.comment).toBe("slurmgate:job_0123456789abcdefghij:1");
  });

  it("sends the script text it is handed without reading the file back, and refuses an oversize one unsent", async () => {
    const bodies: string[] = [];
    await serve((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        bodies.push(body);
        res.end(JSON.stringify(fixture("submit-ok.json").body));
      });
    });
    const text = "#!/bin/bash\n#SBATCH --comment=slurmgate:job_abcdefghij0123456789:2\ntrue\n";
    const missing = `${dir}.never-written.sbatch`;
    const result = await rest().sbatch(missing, [], text);
    expect(result).toMatchObject({ ok: true, value: { slurmJobId: "20676" } });
    expect(JSON.parse(bodies[0] ?? "{}").job.comment).toBe("slurmgate:job_abcdefghij0123456789:2");

    const huge = await rest().sbatch(missing, [], `#!/bin/bash\n${"#".repeat(4 * 1024 * 1024)}\n`);
    expect(huge).toMatchObject({ ok: false, code: "invalid_argument", retryable: false });
    expect(!huge.ok && huge.message).toMatch(/larger than/);
    expect(bodies).toHaveLength(1);
  });

  it("a non-JSON answer, a dropped connection, a timeout or no daemon: an unknown outcome, to look up by tag", async () => {
    await serve((_req, res) => res.end("<html>502 Bad Gateway</html>"));
    const html = await rest().sbatch(script, []);
    expect(!html.ok && isUnknownOutcome(html.code)).toBe(true);

    await new Promise<void>((resolve) => server!.close(() => resolve()));
    await serve((req) => req.socket.destroy());
    const dropped = await rest().sbatch(script, []);
    expect(dropped).toMatchObject({ ok: false, code: "unreachable", retryable: true });

    await new Promise<void>((resolve) => server!.close(() => resolve()));
    await serve(() => undefined);
    const slow = await rest(300).sbatch(script, []);
    expect(slow).toMatchObject({ ok: false, code: "timeout", retryable: true });

    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const down = await rest().sbatch(script, []);
    expect(down).toMatchObject({ ok: false, code: "unreachable", retryable: true });
    const queue = await rest().squeue();
    // A queue that could not be read is "don't know", never an empty queue.
    expect(queue.ok).toBe(false);
  });

  describe("a submission lane (the next request waits in the agent, sent the moment the one before is answered)", () => {
    /** A daemon that holds every submit until released, numbering them in the order they arrive. */
    const heldDaemon = async () => {
      const arrived: string[] = [];
      const release: (() => void)[] = [];
      let inFlight = 0;
      let mostInFlight = 0;
      await serve((req, res) => {
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", () => {
          inFlight++;
          mostInFlight = Math.max(mostInFlight, inFlight);
          arrived.push(JSON.parse(body).job.name);
          release.push(() => {
            inFlight--;
            res.end(JSON.stringify({ ...fixture("submit-ok.json").body, job_id: 100 + arrived.length }));
          });
        });
      });
      const requests = async (count: number) => {
        for (let waited = 0; arrived.length < count && waited < 2_000; waited += 10) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        return [...arrived];
      };
      return { requests, release: () => release.shift()?.(), mostInFlight: () => mostInFlight };
    };
    const named = (name: string) => {
      const path = `${dir}.${name}.sbatch`;
      writeFileSync(path, `#!/bin/bash\n#SBATCH --job-name=${name}\ntrue\n`);
      return path;
    };

    /** "first" sent and held by the daemon, "second" handed over behind it in the same lane. */
    const twoInOneLane = async () => {
      const daemon = await heldDaemon();
      const commands = rest();
      const lane = new Lane();
      const first = inLane(lane, () => commands.sbatch(named("first"), []));
      await first.handedOver;
      const second = inLane(lane, () => commands.sbatch(named("second"), []));
      await second.handedOver; // queued, not waiting for the first's answer
      return { daemon, commands, lane, first, second };
    };

    it("hands the next submission over at once but sends it only when the one before is answered", async () => {
      const { daemon, first, second } = await twoInOneLane();
      expect(await daemon.requests(1)).toEqual(["first"]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await daemon.requests(1)).toEqual(["first"]); // still held back
      daemon.release();
      expect(await first.result).toMatchObject({ ok: true, value: { slurmJobId: "101" } });
      expect(await daemon.requests(2)).toEqual(["first", "second"]);
      daemon.release();
      expect(await second.result).toMatchObject({ ok: true, value: { slurmJobId: "102" } });
      expect(daemon.mostInFlight()).toBe(1);
    });

    it("a submission withdrawn while it waits is never sent, and reads as an answer that never came", async () => {
      const { daemon, commands, lane, first, second } = await twoInOneLane();
      second.cancel();
      daemon.release();
      expect((await first.result).ok).toBe(true);
      const withdrawn = await second.result;
      expect(!withdrawn.ok && isUnknownOutcome(withdrawn.code)).toBe(true); // looked up by tag, never "refused"
      expect(withdrawn).toMatchObject({ message: expect.stringContaining("withdrawn before it was sent") });
      // The lane goes on: a later submission is sent, and the withdrawn one never was.
      const third = inLane(lane, () => commands.sbatch(named("third"), []));
      expect(await daemon.requests(2)).toEqual(["first", "third"]);
      daemon.release();
      expect((await third.result).ok).toBe(true);
    });
  });

  it("a huge answer is cut off, not buffered without bound", async () => {
    await serve((_req, res) => {
      res.write('{"jobs":[');
      const chunk = `${'{"job_id":1},'.repeat(10_000)}`;
      const pump = () => {
        while (res.write(chunk)) {}
        res.once("drain", pump);
      };
      pump();
    });
    const queue = await rest(5_000, 1_000_000).squeue();
    expect(queue).toMatchObject({ ok: false, retryable: true });
  });

  it("a queue answer with errors is no answer (a partial list would read as jobs gone)", async () => {
    await serve((_req, res) => {
      res.statusCode = 500;
      res.end(JSON.stringify({ errors: [{ error: "Unable to contact slurm controller" }], jobs: [] }));
    });
    expect(await rest().squeue()).toMatchObject({ ok: false, code: "failed" });
  });

  it("the doctor says clearly when the socket is not answering, and when it is", async () => {
    const config = parseAgentConfig({
      SLURMGATE_URL: "http://localhost:8080",
      SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(32)}`,
      SLURMGATE_CLUSTER: "alpha",
      SLURMGATE_SHARED_ROOTS: "/scratch",
      SLURMGATE_SLURMRESTD: `unix:${socketPath}`,
      SLURMGATE_COMMAND_TIMEOUT_SECONDS: "5",
    });
    const [down] = await restBackendChecks(config);
    expect(down).toMatchObject({ name: "slurmrestd", ok: false });
    expect(down?.detail).toMatch(/is not answering: .*ENOENT/);
    await serve((_req, res) => res.end(JSON.stringify({ errors: [], pings: [{ ping: "UP" }] })));
    expect(await restBackendChecks(config)).toEqual([
      { name: "slurmrestd", ok: true, detail: `unix:${socketPath} answers` },
    ]);
    expect(await restBackendChecks({ ...config, SLURMGATE_SLURMRESTD: undefined })).toEqual([]);
  });

  it("JWT: sends the token file's token and user, reads it again when it changes, never a malformed one", async () => {
    const seen: (string | undefined)[][] = [];
    await serve((req, res) => {
      seen.push([req.headers["x-slurm-user-name"] as string, req.headers["x-slurm-user-token"] as string]);
      res.end("{}");
    });
    const tokenFile = `${dir}.jwt`;
    writeFileSync(tokenFile, "SLURM_JWT=eyJhbGciOi.first.sig\n");
    const client = restClientFor(
      parseAgentConfig({
        SLURMGATE_URL: "http://localhost:8080",
        SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(32)}`,
        SLURMGATE_CLUSTER: "alpha",
        SLURMGATE_SHARED_ROOTS: "/scratch",
        SLURMGATE_SLURMRESTD: `unix:${socketPath}`,
        SLURMGATE_SLURMRESTD_USER: "svc",
        SLURMGATE_SLURMRESTD_TOKEN_FILE: tokenFile,
      }),
    );
    await client.request("GET", "/slurm/v0.0.38/ping");
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(tokenFile, "eyJhbGciOi.second.sig\n");
    await client.request("GET", "/slurm/v0.0.38/ping");
    writeFileSync(tokenFile, "eyJ\r\nX-Injected: 1\n.x\n");
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(tokenFile, "eyJ\r\nX-Injected: 1\n.y\n");
    await client.request("GET", "/slurm/v0.0.38/ping");
    client.close();
    rmSync(tokenFile, { force: true });
    expect(seen).toEqual([
      ["svc", "eyJhbGciOi.first.sig"],
      ["svc", "eyJhbGciOi.second.sig"],
      [undefined, undefined],
    ]);
  });

  it("asks for the queue only if it changed since the last listing, on slurmctld's clock, and reuses it on 304", async () => {
    const urls: string[] = [];
    let answer: "full" | "same" | "changed" = "full";
    await serve((req, res) => {
      urls.push(req.url ?? "");
      if (answer === "same") {
        res.statusCode = 304;
        res.end();
        return;
      }
      const job = (id: number, state: string) => ({
        job_id: id,
        job_state: state,
        user_name: "sg-alice",
        submit_time: 1_796_000_000,
        last_sched_evaluation: 1_796_000_050,
        // Future times (an expected start, a --begin) must never become the reference.
        start_time: 1_899_999_999,
        eligible_time: 1_899_999_999,
      });
      res.end(JSON.stringify({ errors: [], jobs: [job(5, answer === "full" ? "PENDING" : "RUNNING")] }));
    });
    const commands = rest();
    const first = await commands.squeue();
    answer = "same";
    const second = await commands.squeue();
    answer = "changed";
    const third = await commands.squeue();
    expect(urls).toEqual([
      "/slurm/v0.0.38/jobs",
      "/slurm/v0.0.38/jobs?update_time=1796000049",
      "/slurm/v0.0.38/jobs?update_time=1796000049",
    ]);
    expect(first.ok && second.ok && first.value).toEqual(second.ok && second.value);
    expect(third.ok && third.value[0]?.state).toBe("RUNNING");
    expect(
      listingTime({ jobs: [{ submit_time: 10, start_time: 99, end_time: 99, eligible_time: 99 }, "x", null] }),
    ).toBe(10);
  });

  it("a 304 without a listing to reuse is no answer", async () => {
    await serve((_req, res) => {
      res.statusCode = 304;
      res.end();
    });
    expect(await rest().squeue()).toMatchObject({ ok: false, code: "failed" });
  });

  it("refuses bad ids before any request", async () => {
    expect(await rest().scancel(["1; DROP"])).toMatchObject({ ok: false, code: "invalid_argument" });
  });
});

describe("config", () => {
  const base = {
    SLURMGATE_URL: "http://localhost:8080",
    SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(32)}`,
    SLURMGATE_CLUSTER: "alpha",
    SLURMGATE_SHARED_ROOTS: "/scratch",
  };
  it("reads a unix socket or an http URL, and names the variable when it is wrong", () => {
    expect(parseRestTarget("unix:/run/slurmrestd.sock")).toEqual({ socketPath: "/run/slurmrestd.sock" });
    expect(parseRestTarget("http://login1:6820")).toEqual({ host: "login1", port: 6820 });
    expect(parseAgentConfig({ ...base, SLURMGATE_SLURMRESTD: "unix:/s.sock" }).SLURMGATE_SLURMRESTD).toBe(
      "unix:/s.sock",
    );
    for (const bad of ["unix:relative.sock", "https://x:1", "http://u:p@x:1", "http://x:1/slurm", "nonsense"]) {
      expect(() => parseAgentConfig({ ...base, SLURMGATE_SLURMRESTD: bad })).toThrow(/invalid SLURMGATE_SLURMRESTD/);
    }
    expect(() => parseAgentConfig({ ...base, SLURMGATE_SLURMRESTD_TOKEN_FILE: "token" })).toThrow(
      /SLURMGATE_SLURMRESTD_TOKEN_FILE/,
    );
  });

  it("refuses a site or SSH agent: slurmrestd submits as one user and reads scripts locally", () => {
    const config = parseAgentConfig({ ...base, SLURMGATE_SLURMRESTD: "unix:/s.sock", SLURMGATE_USER_MAP: "/m.json" });
    expect(restConfigProblem(config)).toMatch(/USER_MAP/);
    expect(restConfigProblem(parseAgentConfig({ ...base, SLURMGATE_SLURMRESTD: "unix:/s.sock" }))).toBeNull();
  });
});
