/**
 * Groups the write batches that arrive in one event-loop tick into a single transaction.
 *
 * Why: on an embedded libSQL file each transaction costs a WAL commit; 50 concurrent submits
 * committed one by one spend most of their time there. One transaction for all of them keeps
 * every caller's statements atomic (all of a tick commit or none), and a group that fails is
 * retried caller by caller so one bad request (say, a duplicate idempotency key) cannot fail
 * its neighbours.
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
