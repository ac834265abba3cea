/**
 * The HTTP API suite against a real Node gateway: startGateway on a free port with an embedded
 * libSQL file in a temporary directory and a known bootstrap admin token.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGateway } from "../../gateway/node.ts";
import { generateToken } from "../../gateway/tokens.ts";
import { freePort } from "../helpers/gateway-process.ts";
import { defineApiSuite } from "./suite.ts";

defineApiSuite("node", async () => {
  const dir = mkdtempSync(join(tmpdir(), "slurmgate-api-"));
  const port = await freePort();
  const adminToken = generateToken("admin");
  const { server, deps } = await startGateway({
    PORT: String(port),
    SLURMGATE_DB_URL: `file:${join(dir, "gateway.db")}`,
    SLURMGATE_BOOTSTRAP_TOKEN: adminToken,
    SLURMGATE_LOG_LEVEL: "error",
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${baseUrl}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) {
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    baseUrl,
    adminToken,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      deps.db.client.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
