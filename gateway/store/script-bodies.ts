/**
 * Script bodies shared by many jobs' rendered scripts (the agent's wrapper body), stored once each
 * under their sha256; a job row keeps the head in `jobs.script` and the hash in `jobs.script_body`.
 * Web Crypto, not node:crypto: the same code runs on Workers.
 */
import type { InStatement } from "@libsql/client";
import type { Database } from "../db/client.ts";
import { sha256Hex } from "../tokens.ts";

/** The keys of `bodies` that are not the sha256 of their text. */
export async function misnamedBodies(bodies: Readonly<Record<string, string>>): Promise<string[]> {
  const wrong: string[] = [];
  for (const [key, body] of Object.entries(bodies)) {
    if ((await sha256Hex(body)) !== key) {
      wrong.push(key);
    }
  }
  return wrong;
}

/**
 * The statements that store bodies (already checked against their keys); one that is already there
 * is left alone. They go first in the batch of the reports that name them, so no job row ever names
 * a body not stored.
 */
export function scriptBodyInserts(bodies: Readonly<Record<string, string>>, now: number): InStatement[] {
  return Object.entries(bodies).map(([sha256, body]) => ({
    sql: "INSERT OR IGNORE INTO script_bodies (sha256, body, created_at) VALUES (?, ?, ?)",
    args: [sha256, body, now],
  }));
}

export type StoredScript =
  | { kind: "none" }
  | { kind: "whole"; script: string }
  /** The row names a body the store does not hold: its script cannot be put together. */
  | { kind: "missing_body"; sha256: string };

/** A job's rendered script as the agent reported it: the head and the body it names, joined. */
export async function readJobScript(db: Database, jobId: string): Promise<StoredScript> {
  const rs = await db.client.execute({
    sql: `SELECT j.script AS head, j.script_body AS sha256, b.body AS body
          FROM jobs j LEFT JOIN script_bodies b ON b.sha256 = j.script_body WHERE j.id = ?`,
    args: [jobId],
  });
  const row = rs.rows[0];
  if (!row || typeof row.head !== "string") {
    return { kind: "none" };
  }
  if (row.sha256 === null) {
    return { kind: "whole", script: row.head };
  }
  if (typeof row.body !== "string") {
    return { kind: "missing_body", sha256: String(row.sha256) };
  }
  return { kind: "whole", script: row.head + row.body };
}
