import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";

export const gateway: Command = {
  name: "gateway",
  summary: "run the gateway (Node, embedded libSQL by default)",
  help: `
Usage: slurmgate gateway

Runs the HTTP gateway until SIGINT/SIGTERM. Configured by environment variables:
  PORT                          HTTP port (default 8080)
  SLURMGATE_HOST                listen address (default 127.0.0.1; 0.0.0.0 to serve other machines)
  SLURMGATE_DB_URL              libSQL URL (default file:./data/slurmgate.db; Turso/sqld by URL)
  SLURMGATE_DB_AUTH_TOKEN       auth token for a remote libSQL database
  SLURMGATE_BOOTSTRAP_TOKEN     sgk_… token for the first admin (otherwise one is printed once)
  SLURMGATE_RATE_LIMIT_PER_SECOND, SLURMGATE_LEASE_SECONDS, SLURMGATE_LOG_LEVEL, …

Examples:
  slurmgate gateway
  PORT=9000 SLURMGATE_DB_URL=file:/var/lib/slurmgate/db slurmgate gateway
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("gateway", argv, {});
    if (helped(io, gateway, values)) {
      return 0;
    }
    positionals("gateway", rest, []);
    const { startGateway } = await import("../../gateway/node.ts");
    await startGateway(io.env);
    // The server keeps the process alive; the gateway's own SIGINT/SIGTERM handlers end it.
    return new Promise<number>(() => {});
  },
};
