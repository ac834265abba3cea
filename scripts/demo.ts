/**
 * `npm run demo`: the whole loop on one machine, as root. Brings up the two local test clusters
 * (alpha with A100s, beta with H100s), a gateway on an embedded libSQL file, one agent per cluster,
 * then submits a GPU job and a CPU job and shows their states, logs and results as they happen.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAgent } from "../agent/agent.ts";
import { parseAgentConfig } from "../agent/config.ts";
import { createClient } from "../client/index.ts";
import { startGateway } from "../gateway/node.ts";
import type { Job, JobEvent } from "../client/index.ts";

const REPO = join(import.meta.dirname, "..");
const say = (line: string) => process.stdout.write(`${line}\n`);
const randomToken = (prefix: string) =>
  prefix + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");

say("1/4  bringing up two local Slurm clusters (alpha: 2×A100, beta: 1×H100) …");
execFileSync("bash", [join(REPO, "test/slurm/cluster.sh"), "up"], { stdio: ["ignore", "ignore", "inherit"] });
const clusters = JSON.parse(
  readFileSync(
    process.env.SLURMGATE_TEST_DIR
      ? join(process.env.SLURMGATE_TEST_DIR, "clusters.json")
      : "/var/tmp/slurmgate-test/clusters.json",
    "utf8",
  ),
) as Record<"alpha" | "beta", { slurmConf: string; sharedRoot: string }>;

const dir = mkdtempSync(join(tmpdir(), "slurmgate-demo-"));
const adminToken = randomToken("sgk_");
const port = 18000 + Math.floor(Math.random() * 1000);
say(`2/4  starting the gateway on http://127.0.0.1:${port} (libSQL file ${dir}/slurmgate.db) …`);
const gateway = await startGateway({
  PORT: String(port),
  SLURMGATE_DB_URL: `file:${dir}/slurmgate.db`,
  SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
  SLURMGATE_LOG_LEVEL: "warn",
});
const baseUrl = `http://127.0.0.1:${port}`;
const admin = createClient({ baseUrl, token: adminToken });

say("3/4  registering the clusters and starting one agent per cluster …");
const agents = [];
for (const name of ["alpha", "beta"] as const) {
  await admin.admin.clusters.upsert({
    name,
    sharedRoots: [clusters[name].sharedRoot],
    description: `local test cluster ${name}`,
  });
  await admin.admin.grants.upsert({ user: "admin", cluster: name, partitions: ["*"] });
  const { token } = await admin.admin.tokens.create({ kind: "agent", cluster: name, label: "demo" });
  const env = {
    ...process.env,
    SLURMGATE_URL: baseUrl,
    SLURMGATE_AGENT_TOKEN: token,
    SLURMGATE_CLUSTER: name,
    SLURMGATE_SHARED_ROOTS: clusters[name].sharedRoot,
    SLURM_CONF: clusters[name].slurmConf,
    SLURMGATE_STATE_FILE: join(dir, `agent-${name}.json`),
    SLURMGATE_TRACK_MIN_SECONDS: "1",
    SLURMGATE_TRACK_MAX_SECONDS: "2",
    SLURMGATE_LOG_LEVEL: "warn",
  };
  const agent = await createAgent(parseAgentConfig(env), env);
  agents.push(agent);
  void agent.runForever();
}
for (let i = 0; i < 100 && (await admin.clusters()).filter((c) => c.alive && c.inventory).length < 2; i++) {
  await new Promise((r) => setTimeout(r, 200));
}
for (const c of await admin.clusters()) {
  const gpus = c.inventory?.partitions.find((p) => p.name === "gpu")?.gpus.map((g) => `${g.count}×${g.type}`) ?? [];
  say(
    `     ${c.name}: agent ${c.alive ? "alive" : "not seen"}, partitions ${c.partitions.join(", ")}, GPUs ${gpus.join(" ") || "none"}`,
  );
}

say("4/4  submitting a job that needs an H100 and a plain CPU job …\n");
const gpuJob = await admin.submit({
  name: "demo-gpu",
  partition: "gpu",
  resources: { gpus: { count: 1, type: "h100" }, time: "5m" },
  command: [
    "bash",
    "-c",
    'echo "running on $(hostname) with GPU $CUDA_VISIBLE_DEVICES"; sleep 2; echo "{\\"loss\\": 0.042}" > "$SLURMGATE_RESULT"',
  ],
});
const cpuJob = await admin.submit({
  name: "demo-cpu",
  resources: { cpusPerTask: 1, time: "5m" },
  command: [
    "python3",
    "-c",
    "import json, os; print('sum =', sum(range(10**6))); json.dump({'ok': True}, open(os.environ['SLURMGATE_RESULT'], 'w'))",
  ],
});
say(`     ${gpuJob.id} (demo-gpu) routed to ${gpuJob.cluster}/${gpuJob.partition}`);
say(`     ${cpuJob.id} (demo-cpu) routed to ${cpuJob.cluster}/${cpuJob.partition}\n`);

const show = (job: Job) => (event: JobEvent) =>
  say(
    `     ${event.at.slice(11, 23)}  ${job.name.padEnd(9)} ${(event.state ?? event.type).padEnd(10)} ${event.detail ?? ""}`,
  );
const [gpuDone, cpuDone] = await Promise.all([
  admin.wait(gpuJob.id, { timeout: 180_000, onEvent: show(gpuJob) }),
  admin.wait(cpuJob.id, { timeout: 180_000, onEvent: show(cpuJob) }),
]);
for (const job of [gpuDone, cpuDone]) {
  say(`\n--- ${job.name}: ${job.state}, exit ${job.exitCode}, Slurm job ${job.slurmJobId} on ${job.cluster}`);
  for await (const text of admin.logs(job.id)) {
    process.stdout.write(text.replace(/^(?=.)/gm, "    | "));
  }
  say(`    result: ${JSON.stringify(job.result)}`);
}
say(`\nThe gateway is still up at ${baseUrl} (admin token: ${adminToken}); Ctrl-C to stop.`);
say(`Try: curl -s -H "authorization: Bearer ${adminToken}" ${baseUrl}/v1/jobs | head -c 400`);
if (process.env.SLURMGATE_DEMO_EXIT) {
  for (const agent of agents) {
    agent.stop();
  }
  gateway.server.close();
  process.exit(gpuDone.state === "completed" && cpuDone.state === "completed" ? 0 : 1);
}
