/**
 * The SQL the store really sends, captured where the app's handlers send it: reads through
 * `db.client`, writes through `db.write`. Used to judge query plans and to count statements.
 */
import type { InArgs, InStatement } from "@libsql/client";
import type { Database } from "../../gateway/db/client.ts";

export type Captured = { sql: string; args: InArgs };

/**
 * Records every statement the store sends while `run` runs: reads through `db.client`, writes
 * through `db.write` (the same objects the app's handlers hold), nothing changed underneath.
 */
export async function captureStatements(db: Database, run: () => Promise<unknown>): Promise<Captured[]> {
  const seen: Captured[] = [];
  const record = (stmt: InStatement | string, args?: InArgs) =>
    seen.push(typeof stmt === "string" ? { sql: stmt, args: args ?? [] } : { sql: stmt.sql, args: stmt.args ?? [] });
  const { client, write } = db;
  db.client = new Proxy(client, {
    get(target, key) {
      if (key === "execute") {
        return (stmt: InStatement | string, args?: InArgs) => {
          record(stmt, args);
          return typeof stmt === "string" ? target.execute(stmt, args) : target.execute(stmt);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  db.write = (statements) => {
    for (const stmt of statements) {
      record(stmt);
    }
    return write(statements);
  };
  try {
    await run();
  } finally {
    db.client = client;
    db.write = write;
  }
  return seen;
}
