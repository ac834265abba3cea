/**
 * Groups the write batches that arrive in one event-loop tick into a single transaction.
 *
 * Why: on an embedded libSQL file each transaction costs a WAL commit; 50 concurrent submits
 * committed one by one spend most of their time there. One transaction for all of them keeps
 * every caller's statements atomic (all of a tick commit or none), and a group that fails is
 * retried caller by caller so one bad request (say, a duplicate idempotency key) cannot fail
 * its neighbours.
 *
 * When every write of a group has the same shape and consists of single-row INSERTs (a burst of
 * submits: job row + first event row each), the group goes in as one multi-row INSERT per
 * statement instead of one statement per request: libSQL prepares each statement anew, and that
 * preparation was the largest item in the submit profile.
 */
import type { Client, InStatement, ResultSet } from "@libsql/client";

type Pending = { statements: InStatement[]; resolve: (r: ResultSet[]) => void; reject: (e: unknown) => void };

export type WriteQueue = { run: (statements: InStatement[]) => Promise<ResultSet[]> };

export function createWriteQueue(client: Client, maxGroup = 256): WriteQueue {
  let pending: Pending[] = [];
  let scheduled = false;
  let running: Promise<void> = Promise.resolve();

  const flush = async (group: Pending[]) => {
    if (group.length === 1) {
      const [only] = group;
      await client.batch(only!.statements, "write").then(only!.resolve, only!.reject);
      return;
    }
    try {
      const merged = mergeInserts(group.map((p) => p.statements));
      if (merged) {
        await client.batch(merged, "write");
        for (const p of group) {
          p.resolve(p.statements.map(() => ONE_ROW_INSERTED));
        }
        return;
      }
      const results = await client.batch(
        group.flatMap((p) => p.statements),
        "write",
      );
      let index = 0;
      for (const p of group) {
        p.resolve(results.slice(index, index + p.statements.length));
        index += p.statements.length;
      }
    } catch {
      for (const p of group) {
        await client.batch(p.statements, "write").then(p.resolve, p.reject);
      }
    }
  };

  const drain = () => {
    scheduled = false;
    const all = pending;
    pending = [];
    for (let i = 0; i < all.length; i += maxGroup) {
      const group = all.slice(i, i + maxGroup);
      running = running.then(() => flush(group));
    }
  };

  return {
    run(statements) {
      return new Promise<ResultSet[]>((resolve, reject) => {
        pending.push({ statements, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          // setImmediate runs right after this turn's I/O callbacks: it still groups every request
          // that reached the queue in this turn, without setTimeout's ≥1 ms floor on each write.
          setImmediate(drain);
        }
      });
    },
  };
}

/** `INSERT INTO t (cols) VALUES (…)`: one row, positional arguments, nothing after the row. */
const SINGLE_ROW_INSERT = /^(\s*INSERT\s+INTO\s+\w+\s*\([^()]*\)\s*VALUES\s*)(\([^()]*\))\s*$/i;

const ONE_ROW_INSERTED: ResultSet = {
  columns: [],
  columnTypes: [],
  rows: [],
  rowsAffected: 1,
  lastInsertRowid: undefined,
  toJSON: () => ({ columns: [], columnTypes: [], rows: [], rowsAffected: 1, lastInsertRowid: null }),
};

/**
 * One multi-row INSERT per position when all writes are the same sequence of single-row INSERTs;
 * undefined otherwise. Each writer's statements keep their order.
 */
export function mergeInserts(writes: InStatement[][]): InStatement[] | undefined {
  const [first] = writes;
  if (!first) {
    return undefined;
  }
  const merged: InStatement[] = [];
  for (let k = 0; k < first.length; k++) {
    const template = first[k];
    if (typeof template !== "object" || !Array.isArray(template.args)) {
      return undefined;
    }
    const match = SINGLE_ROW_INSERT.exec(template.sql);
    if (!match) {
      return undefined;
    }
    const args: unknown[] = [];
    for (const write of writes) {
      const statement = write[k];
      if (
        write.length !== first.length ||
        typeof statement !== "object" ||
        statement.sql !== template.sql ||
        !Array.isArray(statement.args)
      ) {
        return undefined;
      }
      args.push(...statement.args);
    }
    merged.push({ sql: match[1] + Array(writes.length).fill(match[2]).join(", "), args: args as never });
  }
  return merged;
}
