/**
 * Node entry: `npm start` / `slurmgate gateway`. Parses the environment once, migrates the
 * database, makes sure an admin exists, serves HTTP, and in the background sweeps expired leases and
 * delivers webhooks.
 */
import { serve } from "@hono/node-server";
import { createApp } from "./app.ts";
import { ensureAdmin } from "./bootstrap.ts";
import { keepIdleConnections } from "./keep-alive.ts";
import { parseGatewayConfig } from "./config.ts";
import { createNodeDeps } from "./node-deps.ts";
import { expireLeases } from "./store/leases.ts";
import { startWebhookLoop } from "./webhook-loop.ts";
import { RETENTION_EVERY_MS, collectFiles } from "./files/retention.ts";
import { nodeTransport } from "./webhook-transport-node.ts";

const SWEEP_EVERY_MS = 15_000;

export async function startGateway(env: Record<string, string | undefined>) {
  const config = parseGatewayConfig(env);
  const deps = await createNodeDeps(config);
  const admin = await ensureAdmin(deps, config.SLURMGATE_BOOTSTRAP_TOKEN);
  if (admin.token) {
    process.stdout.write(
      `\nFirst start: created user 'admin'. Its token is shown once; keep it safe:\n\n  ${admin.token}\n\n` +
        `Use it with: slurmgate login --url http://${config.SLURMGATE_HOST}:${config.PORT} --token <token>\n\n`,
    );
  }
  const app = createApp(deps);
  const sweep = setInterval(() => {
    expireLeases(deps.db, deps.now()).catch((err) =>
      deps.log({ level: "error", msg: "lease sweep failed", error: String(err) }),
    );
  }, SWEEP_EVERY_MS);
  sweep.unref();
  const retention = setInterval(() => {
    collectFiles(deps).catch((err) => deps.log({ level: "error", msg: "file retention failed", error: String(err) }));
  }, RETENTION_EVERY_MS);
  retention.unref();
  const webhooks = startWebhookLoop(deps, nodeTransport());
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.SLURMGATE_HOST }, (info) => {
    deps.log({
      level: "info",
      msg: "slurmgate gateway listening",
      url: `http://${info.address}:${info.port}`,
      db: config.SLURMGATE_DB_URL.replace(/\?.*$/, ""),
    });
  });
  keepIdleConnections(server);
  const stop = () => {
    clearInterval(sweep);
    clearInterval(retention);
    // The loop ends after the try in flight and releases the webhook it held, so a restart resumes at once.
    const loopDone = webhooks.stop();
    server.close(() => void loopDone.finally(() => process.exit(0)));
    setTimeout(() => process.exit(0), 3_000).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  return { app, deps, server, webhooks };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  startGateway(process.env).catch((err: Error) => {
    process.stderr.write(`slurmgate gateway: ${err.message}\n`);
    process.exit(1);
  });
}
