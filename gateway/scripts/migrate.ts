/**
 * Applies the committed drizzle migrations (gateway/db/migrations) to any libSQL database:
 *
 *   npm run db:migrate -- --url libsql://slurmgate-<org>.turso.io --auth-token "$TOKEN"
 *   npm run db:migrate -- --url file:./data/slurmgate.db
 *
 * The Worker never migrates on a request path, so run this before each `wrangler deploy` that
 * ships a new migration. Without flags it reads LIBSQL_URL / LIBSQL_AUTH_TOKEN (or the Node
 * gateway's SLURMGATE_DB_URL / SLURMGATE_DB_AUTH_TOKEN). Re-running is a no-op.
 */
import { parseArgs } from "node:util";
import { createClient } from "@libsql/client";
import { openDatabase } from "../db/client.ts";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../db/migrate.ts";

const USAGE = "usage: npm run db:migrate -- --url <libsql url> [--auth-token <token>]";

export async function runMigrations(url: string, authToken?: string): Promise<{ tables: number }> {
  const client = createClient({ url, authToken });
  try {
    await migrateDatabase(openDatabase(client));
    const rs = await client.execute("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'");
    return { tables: Number(rs.rows[0]?.n ?? 0) };
  } finally {
    client.close();
  }
}

async function main() {
  const { values } = parseArgs({
    options: { url: { type: "string" }, "auth-token": { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const url = values.url ?? process.env.LIBSQL_URL ?? process.env.SLURMGATE_DB_URL;
  const authToken = values["auth-token"] ?? process.env.LIBSQL_AUTH_TOKEN ?? process.env.SLURMGATE_DB_AUTH_TOKEN;
  if (!url) {
    throw new Error(`no database URL: pass --url or set LIBSQL_URL\n${USAGE}`);
  }
  const { tables } = await runMigrations(url, authToken || undefined);
  const shown = url.replace(/\?.*$/, "");
  process.stdout.write(`migrated ${shown} from ${MIGRATIONS_FOLDER} (${tables} tables)\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: Error) => {
    const cause = err.cause instanceof Error ? `\n  caused by: ${err.cause.message}` : "";
    process.stderr.write(`db:migrate: ${err.message.split("\n")[0]}${cause}\n`);
    process.exit(1);
  });
}
