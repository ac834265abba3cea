import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Command, helped } from "../command.ts";
import { CliError } from "../errors.ts";

const AGENT_MAIN = new URL("../../agent/main.ts", import.meta.url);

type AgentModule = { main?: (argv: string[]) => Promise<number> };

export const agent: Command = {
  name: "agent",
  summary: "run the cluster agent on a login node",
  help: `
Usage: slurmgate agent [agent options]
       slurmgate agent stage SOURCE NAME [--kind model|image] | --list | --remove REF

Runs the agent that leases jobs from the gateway and drives Slurm (sbatch, squeue, sacct,
scancel). Everything after "agent" is passed to the agent; "slurmgate agent --help" lists its
options and environment variables. "slurmgate agent stage" places models and images in the
agent's cache root for clusters whose compute nodes are offline ("slurmgate agent stage --help").

Examples:
  SLURMGATE_URL=https://slurmgate.example.org SLURMGATE_AGENT_TOKEN=sga_… slurmgate agent
  slurmgate agent --help
`,
  async run(argv, io) {
    if (argv[0] === "stage") {
      const { stageMain } = await import("../../agent/stage-cli.ts");
      return stageMain(argv.slice(1), io.env, io);
    }
    if (!existsSync(fileURLToPath(AGENT_MAIN))) {
      if (helped(io, agent, { help: argv.includes("--help") || argv.includes("-h") })) {
        return 0;
      }
      throw new CliError("the agent is not part of this build (agent/main.ts is missing)");
    }
    const mod = (await import(AGENT_MAIN.href)) as AgentModule;
    if (typeof mod.main !== "function") {
      throw new CliError("agent/main.ts does not export main(argv)");
    }
    return mod.main(argv);
  },
};
