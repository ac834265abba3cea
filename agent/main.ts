/**
 * `slurmgate agent [run|doctor] [--once] [--config FILE]`: the agent's command line. Runs on Node 20
 * (login nodes rarely have newer); `npm run build:agent` bundles it into one file.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createAgent } from "./agent.ts";
import { parseAgentConfig, parseEnvFile } from "./config.ts";

const HELP = `usage: slurmgate agent [run] [--once] [--config FILE]
       slurmgate agent doctor [--smoke] [--config FILE]

Runs the cluster agent: leases jobs from the gateway, submits them with sbatch, tracks them with
one squeue and one sacct per cycle, cancels, and ships logs and results. Connects outbound only.

  --config FILE   NAME=value lines (SLURMGATE_URL, SLURMGATE_AGENT_TOKEN, ...); the environment wins
  --once          one full cycle (lease, submit, track, report, ship logs), then exit:
                  0 when nothing failed, 1 otherwise (for cron / scrontab)
  --status        print the agent's status as JSON after the cycle (with --once)

Examples:
  slurmgate agent --config ~/.config/slurmgate/agent.env
  */5 * * * *  slurmgate agent --once --config ~/.config/slurmgate/agent.env
  kill -USR1 <pid>   # a running agent prints its status line to stderr
`;

function loadEnv(configFile: string | undefined, env: Record<string, string | undefined>) {
  const fromFile = configFile ? parseEnvFile(readFileSync(configFile, "utf8")) : {};
  return { ...fromFile, ...env };
}

export async function main(argv: string[], env: Record<string, string | undefined> = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      once: { type: "boolean" },
      status: { type: "boolean" },
      smoke: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const verb = positionals[0] ?? "run";
  const source = loadEnv(values.config, env);
  if (verb === "doctor") {
    const { runDoctor } = await import("./doctor.ts");
    return runDoctor(source, { smoke: Boolean(values.smoke) });
  }
  if (verb !== "run") {
    process.stderr.write(`slurmgate agent: unknown verb '${verb}'\n${HELP}`);
    return 2;
  }
  const config = parseAgentConfig(source);
  const agent = await createAgent(config, source, { waitForGateway: !values.once });
  if (values.once) {
    const stats = await agent.runOnce();
    if (values.status) {
      process.stdout.write(`${JSON.stringify({ ...agent.status(), stats })}\n`);
    }
    return stats.errors.length === 0 ? 0 : 1;
  }
  const onSignal = () => agent.stop();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  process.on("SIGUSR1", () => process.stderr.write(`${JSON.stringify({ status: agent.status() })}\n`));
  await agent.runForever();
  return 0;
}

if (
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith("slurmgate-agent.mjs") ||
  (globalThis as { __SLURMGATE_AGENT_BUNDLE__?: boolean }).__SLURMGATE_AGENT_BUNDLE__
) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`slurmgate agent: ${err.message}\n`);
      process.exit(1);
    },
  );
}
