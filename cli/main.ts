/**
 * `slurmgate`: the command line for people. Dispatches to one verb, turns every failure into one
 * line on stderr and an exit code that means something (see EXIT).
 */
import { VERSION } from "../schemas/version.ts";
import type { Command } from "./command.ts";
import { agent } from "./commands/agent.ts";
import { cancel } from "./commands/cancel.ts";
import { cluster } from "./commands/cluster.ts";
import { clusters } from "./commands/clusters.ts";
import { gateway } from "./commands/gateway.ts";
import { login } from "./commands/login.ts";
import { logout } from "./commands/logout.ts";
import { head, tail } from "./commands/job-dir.ts";
import { logs } from "./commands/logs.ts";
import { cp } from "./commands/cp.ts";
import { ls } from "./commands/ls.ts";
import { show } from "./commands/show.ts";
import { submit } from "./commands/submit.ts";
import { sweep } from "./commands/sweep.ts";
import { token } from "./commands/token.ts";
import { user } from "./commands/user.ts";
import { wait } from "./commands/wait.ts";
import { webhook } from "./commands/webhook.ts";
import { whoami } from "./commands/whoami.ts";
import { EXIT, errorJson, exitCodeOf, formatError, UsageError } from "./errors.ts";
import type { Io } from "./io.ts";

const USER_VERBS = [
  login,
  logout,
  submit,
  sweep,
  ls,
  show,
  logs,
  head,
  tail,
  cp,
  cancel,
  wait,
  clusters,
  webhook,
  whoami,
];
const SERVER_VERBS = [gateway, agent, token, user, cluster];
const VERBS = new Map<string, Command>([...USER_VERBS, ...SERVER_VERBS].map((c) => [c.name, c]));

const list = (verbs: Command[]) => verbs.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join("\n");

export const MAIN_HELP = `
slurmgate: submit and watch Slurm jobs over HTTPS.

Usage: slurmgate VERB [options]     (slurmgate VERB --help for details and examples)

For people:
${list(USER_VERBS)}

For operators:
${list(SERVER_VERBS)}

Configuration: slurmgate login stores the gateway URL and token (or, with --oidc, your identity
provider's sign-in, refreshed by itself) in $XDG_CONFIG_HOME/slurmgate/config.json (mode 0600);
SLURMGATE_URL and SLURMGATE_TOKEN override it.

Exit codes: 0 ok · 1 API, network or configuration error · 2 bad usage ·
            3 job did not complete · 4 wait timed out · 130 interrupted

Errors: one line on stderr, "slurmgate: …". With --json, every error (bad usage, the gateway's
refusals, network failures) is instead one JSON object on stderr, stdout staying for results:
  {"error":{"kind":"api","message":"…","exit":1,"status":422,"code":"validation_failed","field":"body.name"}}
kind is usage, api, network, malformed_response, timeout, interrupted or error.

Examples:
  slurmgate login --url http://127.0.0.1:8080 --token sgu_…
  slurmgate login --url https://slurmgate.example.org --oidc https://idp.example.org/realms/hpc
  slurmgate submit --gpus a100:1 --time 1h --partition gpu --follow -- python train.py
  slurmgate sweep submit job.yaml --grid LR=0.1,0.01 --grid SEED=1,2,3 --max-parallel 3 --wait
  slurmgate ls --state running
  slurmgate wait job_01jd7x2k9m4q8r6t5v3w1y0z && slurmgate logs job_01jd7x2k9m4q8r6t5v3w1y0z
`;

/** `--json` among the verb's options (not in a job's command after `--`), even when parsing failed. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
      const target = verb === "help" && rest[0] ? VERBS.get(rest[0]) : undefined;
      io.stdout.write(`${(target?.help ?? MAIN_HELP).trim()}\n`);
      return verb === undefined ? EXIT.usage : EXIT.ok;
    }
    if (verb === "--version" || verb === "-V") {
      io.stdout.write(`slurmgate ${VERSION}\n`);
      return EXIT.ok;
    }
    const command = VERBS.get(verb);
    if (!command) {
      throw new UsageError(`unknown verb ${JSON.stringify(verb)}`);
    }
    return await command.run(rest, io);
  } catch (err) {
    io.stderr.write(wantsJson(rest) ? `${JSON.stringify(errorJson(err))}\n` : `slurmgate: ${formatError(err)}\n`);
    return exitCodeOf(err);
  }
}
