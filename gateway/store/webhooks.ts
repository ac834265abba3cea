/**
 * Webhooks and their delivery log (schema.ts, migration 0009). The pass reads a webhook's new
 * events by feed position (job_events rowid) in a bounded window, and its queue through the partial
 * index of undelivered rows, so neither grows with the history. Rows are read without throwing: a
 * damaged `events` or `scope` column leaves the webhook subscribed to nothing, never a 500.
 */
import type { Row } from "@libsql/client";
import {
  MAX_WEBHOOK_BACKLOG,
  WEBHOOK_LOG_RETENTION,
  type Webhook,
  type WebhookDelivery,
  WebhookEventType,
  WebhookScope,
  webhookEventType,
} from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";
import { iso, rowToEvent } from "./job-row.ts";

/** A webhook as the delivery pass needs it: the public view plus its secret and times. */
export type StoredWebhook = Webhook & {
  secret: string;
  cursorValue: number;
  failingSince: number | null;
  retryAt: number;
};

const COLUMNS = `id, owner, url, events, description, scope, all_users, allow_private, secret, cursor,
  consecutive_failures, failing_since, retry_at, disabled_at, disabled_reason, created_at`;

function parsed<T>(raw: unknown, parse: (value: unknown) => { success: boolean; data?: T }, fallback: T): T {
  try {
    const result = parse(JSON.parse(String(raw)));
    return result.success ? (result.data as T) : fallback;
  } catch {
    return fallback;
  }
}

function rowToWebhook(row: Row): StoredWebhook {
  const events = parsed(row.events, (v) => WebhookEventType.array().safeParse(v), [] as string[]);
  const scope = row.scope === null ? null : parsed(row.scope, (v) => WebhookScope.safeParse(v), null);
  return {
    id: String(row.id),
    owner: String(row.owner),
    url: String(row.url),
    events,
    description: String(row.description ?? ""),
    scope,
    allUsers: Boolean(Number(row.all_users)),
    allowPrivate: Boolean(Number(row.allow_private)),
    enabled: row.disabled_at === null,
    disabledReason: row.disabled_reason === null ? null : String(row.disabled_reason),
    consecutiveFailures: Number(row.consecutive_failures),
    cursor: String(row.cursor),
    createdAt: iso(Number(row.created_at)),
    secret: String(row.secret),
    cursorValue: Number(row.cursor),
    failingSince: row.failing_since === null ? null : Number(row.failing_since),
    retryAt: Number(row.retry_at),
  };
}

/** The public view: never the secret. */
export function publicWebhook(stored: StoredWebhook): Webhook {
  const { secret: _secret, cursorValue: _c, failingSince: _f, retryAt: _r, ...view } = stored;
  return view;
}

export type NewWebhook = {
  id: string;
  owner: string;
  url: string;
  events: string[];
  description: string;
  scope: WebhookScope | null;
  allUsers: boolean;
  allowPrivate: boolean;
  secret: string;
};

/**
 * Stores the webhook starting at the feed's current end, unless the owner already has `max`: one
 * statement, so two concurrent registrations cannot both pass the count. False when over the limit.
 */
export async function insertWebhook(db: Database, hook: NewWebhook, max: number, now: number): Promise<boolean> {
  const [rs] = await db.write([
    {
      sql: `INSERT INTO webhooks (id, owner, url, events, description, scope, all_users, allow_private, secret, cursor, created_at)
            SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(rowid), 0) FROM job_events), ?
            WHERE (SELECT count(*) FROM webhooks WHERE owner = ?) < ?`,
      args: [
        hook.id,
        hook.owner,
        hook.url,
        JSON.stringify(hook.events),
        hook.description,
        hook.scope ? JSON.stringify(hook.scope) : null,
        hook.allUsers ? 1 : 0,
        hook.allowPrivate ? 1 : 0,
        hook.secret,
        now,
        hook.owner,
        max,
      ],
    },
  ]);
  return (rs?.rowsAffected ?? 0) === 1;
}

export async function getWebhook(db: Database, id: string): Promise<StoredWebhook | undefined> {
  const rs = await db.client.execute({ sql: `SELECT ${COLUMNS} FROM webhooks WHERE id = ?`, args: [id] });
  return rs.rows[0] ? rowToWebhook(rs.rows[0]) : undefined;
}

/** An owner's webhooks, or everyone's when owner is undefined (an admin), oldest first. */
export async function listWebhooks(db: Database, owner: string | undefined): Promise<StoredWebhook[]> {
  const rs = await db.client.execute(
    owner === undefined
      ? `SELECT ${COLUMNS} FROM webhooks ORDER BY id`
      : { sql: `SELECT ${COLUMNS} FROM webhooks WHERE owner = ? ORDER BY id`, args: [owner] },
  );
  return rs.rows.map(rowToWebhook);
}

export async function deleteWebhook(db: Database, id: string): Promise<void> {
  await db.write([
    { sql: "DELETE FROM webhook_deliveries WHERE webhook_id = ?", args: [id] },
    { sql: "DELETE FROM webhooks WHERE id = ?", args: [id] },
  ]);
}

/** Back on: the streak is forgotten and the queue is tried at once, from where it stopped. */
export async function enableWebhook(db: Database, id: string): Promise<void> {
  await db.write([
    {
      sql: `UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL, consecutive_failures = 0,
              failing_since = NULL, retry_at = 0 WHERE id = ?`,
      args: [id],
    },
    { sql: "UPDATE webhook_deliveries SET next_at = NULL WHERE webhook_id = ? AND delivered_at IS NULL", args: [id] },
  ]);
}

function rowToDelivery(row: Row): WebhookDelivery {
  const at = (v: unknown) => (v === null || v === undefined ? null : iso(Number(v)));
  return {
    messageId: messageId(String(row.webhook_id), Number(row.cursor)),
    cursor: String(row.cursor),
    jobId: String(row.job_id),
    seq: Number(row.seq),
    type: String(row.type),
    attempts: Number(row.attempts),
    lastStatus: row.last_status === null ? null : Number(row.last_status),
    lastError: row.last_error === null ? null : String(row.last_error),
    nextAttemptAt: row.delivered_at === null ? at(row.next_at) : null,
    deliveredAt: at(row.delivered_at),
  };
}

/** The `webhook-id` of an event for a webhook: the same on every try, different for every event. */
export const messageId = (webhookId: string, cursor: number) => `msg_${webhookId.replace(/^wh_/, "")}_${cursor}`;

/** The log, newest event first, after `before` (a cursor from the previous page). */
export async function listDeliveries(
  db: Database,
  query: { webhookId: string; before: number | undefined; limit: number },
): Promise<{ items: WebhookDelivery[]; nextCursor: string | null }> {
  const rs = await db.client.execute({
    sql: `SELECT webhook_id, cursor, job_id, seq, type, attempts, last_status, last_error, next_at, delivered_at
          FROM webhook_deliveries WHERE webhook_id = ? ${query.before === undefined ? "" : "AND cursor < ?"}
          ORDER BY cursor DESC LIMIT ?`,
    args:
      query.before === undefined
        ? [query.webhookId, query.limit + 1]
        : [query.webhookId, query.before, query.limit + 1],
  });
  const rows = rs.rows.slice(0, query.limit);
  const items = rows.map(rowToDelivery);
  return { items, nextCursor: rs.rows.length > query.limit ? (items.at(-1)?.cursor ?? null) : null };
}

// ---- the delivery pass ----

/**
 * Enabled webhooks with work (events past their cursor, or undelivered rows) whose retry time has
 * come and that no other pass holds; the one whose last pass ended longest ago first, so a few busy
 * webhooks cannot starve the rest. An idle webhook costs this read, never a write.
 */
export async function dueWebhookIds(db: Database, now: number, limit: number): Promise<string[]> {
  const rs = await db.client.execute({
    sql: `SELECT id FROM webhooks w
          WHERE disabled_at IS NULL AND retry_at <= ? AND lease_until <= ?
            AND (cursor < (SELECT coalesce(max(rowid), 0) FROM job_events)
              OR EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.delivered_at IS NULL))
          ORDER BY lease_until, id LIMIT ?`,
    args: [now, now, limit],
  });
  return rs.rows.map((row) => String(row.id));
}

/** Takes the webhook for one pass until `until`; undefined when another pass holds it or it was disabled. */
export async function claimWebhook(
  db: Database,
  id: string,
  now: number,
  until: number,
): Promise<StoredWebhook | undefined> {
  const [rs] = await db.write([
    {
      sql: `UPDATE webhooks SET lease_until = ? WHERE id = ? AND disabled_at IS NULL AND lease_until <= ?
            RETURNING ${COLUMNS}`,
      args: [until, id, now],
    },
  ]);
  return rs?.rows[0] ? rowToWebhook(rs.rows[0]) : undefined;
}

/** Ends a pass's hold; the time it ended orders the next passes (dueWebhookIds). */
export async function releaseWebhook(db: Database, id: string, now: number): Promise<void> {
  await db.write([{ sql: "UPDATE webhooks SET lease_until = ? WHERE id = ?", args: [now, id] }]);
}

/** Most feed rows one pass looks at for a webhook: its cost per pass, whatever else happened. */
const SCAN_WINDOW = 5_000;

/**
 * Takes the webhook's matching events after its cursor into its queue and moves the cursor, in one
 * batch guarded by the cursor it read (a second pass cannot take them twice). The queue holds at
 * most MAX_WEBHOOK_BACKLOG undelivered events; past that the cursor waits, so nothing is dropped.
 */
export async function takeEvents(
  db: Database,
  hook: StoredWebhook,
  now: number,
  body: (event: TakenEvent) => string,
): Promise<number> {
  const pendingRs = await db.client.execute({
    sql: "SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = ? AND delivered_at IS NULL",
    args: [hook.id],
  });
  const room = MAX_WEBHOOK_BACKLOG - Number(pendingRs.rows[0]?.n ?? 0);
  if (room <= 0) {
    return 0;
  }
  const endRs = await db.client.execute("SELECT coalesce(max(rowid), 0) AS end FROM job_events");
  const upto = Math.min(Number(endRs.rows[0]?.end ?? 0), hook.cursorValue + SCAN_WINDOW);
  if (upto <= hook.cursorValue) {
    return 0;
  }
  if (hook.events.length === 0) {
    // Subscribed to nothing (a damaged row): move on, so it is not due again for the same events.
    await db.write([
      { sql: "UPDATE webhooks SET cursor = ? WHERE id = ? AND cursor = ?", args: [upto, hook.id, hook.cursorValue] },
    ]);
    hook.cursorValue = upto;
    return 0;
  }
  const where: string[] = ["e.rowid > ?", "e.rowid <= ?"];
  const args: (string | number)[] = [hook.cursorValue, upto];
  if (!hook.allUsers) {
    where.push("j.owner = ?");
    args.push(hook.owner);
  }
  if (hook.scope?.cluster) {
    where.push("j.cluster = ?");
    args.push(hook.scope.cluster);
  }
  if (hook.scope?.sweep) {
    where.push("j.sweep_id = ?");
    args.push(hook.scope.sweep);
  }
  if (hook.scope?.label) {
    where.push(
      "EXISTS (SELECT 1 FROM job_labels l WHERE l.owner = j.owner AND l.key = ? AND l.value = ? AND l.job_id = j.id)",
    );
    args.push(hook.scope.label.key, hook.scope.label.value);
  }
  // webhookEventType (schemas/webhook.ts) in SQL, so unsubscribed events are never read.
  where.push(
    `(CASE WHEN e.type = 'state' THEN 'job.' || e.state ELSE 'job.' || e.type END) IN (${hook.events.map(() => "?").join(", ")})`,
  );
  args.push(...hook.events);
  const rs = await db.client.execute({
    sql: `SELECT e.rowid AS cursor, e.job_id, e.seq, e.at, e.actor, e.type, e.state, e.detail,
                 j.state AS job_state, j.owner, j.cluster, j.name
          FROM job_events e JOIN jobs j ON j.id = e.job_id
          WHERE ${where.join(" AND ")} ORDER BY e.rowid LIMIT ?`,
    args: [...args, room],
  });
  const taken: TakenEvent[] = rs.rows.map((row) => ({
    ...rowToEvent(row),
    jobId: String(row.job_id),
    cursor: Number(row.cursor),
    jobState: String(row.job_state),
    owner: String(row.owner),
    cluster: String(row.cluster),
    name: String(row.name),
  }));
  const next = taken.length === room ? (taken.at(-1)?.cursor ?? upto) : upto;
  await db.write([
    ...taken.map((event) => ({
      sql: `INSERT OR IGNORE INTO webhook_deliveries (webhook_id, cursor, job_id, seq, type, body, created_at)
            SELECT ?, ?, ?, ?, ?, ?, ? WHERE (SELECT cursor FROM webhooks WHERE id = ?) = ?`,
      args: [
        hook.id,
        event.cursor,
        event.jobId,
        event.seq,
        webhookEventType(event),
        body(event),
        now,
        hook.id,
        hook.cursorValue,
      ],
    })),
    { sql: "UPDATE webhooks SET cursor = ? WHERE id = ? AND cursor = ?", args: [next, hook.id, hook.cursorValue] },
  ]);
  hook.cursorValue = next;
  return taken.length;
}

export type TakenEvent = ReturnType<typeof rowToEvent> & {
  jobId: string;
  cursor: number;
  jobState: string;
  owner: string;
  cluster: string;
  name: string;
};

export type QueuedDelivery = { cursor: number; jobId: string; type: string; body: string; attempts: number };

/** The oldest undelivered events of a webhook, in feed order. */
export async function queuedDeliveries(db: Database, webhookId: string, limit: number): Promise<QueuedDelivery[]> {
  const rs = await db.client.execute({
    sql: `SELECT cursor, job_id, type, body, attempts FROM webhook_deliveries
          WHERE webhook_id = ? AND delivered_at IS NULL ORDER BY cursor LIMIT ?`,
    args: [webhookId, limit],
  });
  return rs.rows.map((row) => ({
    cursor: Number(row.cursor),
    jobId: String(row.job_id),
    type: String(row.type),
    body: String(row.body),
    attempts: Number(row.attempts),
  }));
}

export async function recordDelivered(
  db: Database,
  webhookId: string,
  cursor: number,
  status: number,
  now: number,
): Promise<void> {
  await db.write([
    {
      sql: `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = NULL, next_at = NULL,
              delivered_at = ? WHERE webhook_id = ? AND cursor = ?`,
      args: [status, now, webhookId, cursor],
    },
    {
      sql: "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL, retry_at = 0 WHERE id = ?",
      args: [webhookId],
    },
  ]);
}

export async function recordFailed(
  db: Database,
  webhookId: string,
  cursor: number,
  failure: { status: number | null; error: string; retryAt: number; failingSince: number; disable: string | null },
  now: number,
): Promise<void> {
  await db.write([
    {
      sql: `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, next_at = ?
            WHERE webhook_id = ? AND cursor = ?`,
      args: [failure.status, failure.error.slice(0, 512), failure.retryAt, webhookId, cursor],
    },
    {
      sql: `UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, failing_since = ?, retry_at = ?,
              disabled_at = CASE WHEN ? IS NULL THEN NULL ELSE ? END, disabled_reason = ? WHERE id = ?`,
      args: [failure.failingSince, failure.retryAt, failure.disable, now, failure.disable, webhookId],
    },
  ]);
}

/** Keeps the log bounded: delivered rows past the retention time, or past the newest WEBHOOK_LOG_RETENTION.rows. */
export async function pruneDeliveries(db: Database, webhookId: string, now: number): Promise<void> {
  await db.write([
    {
      sql: `DELETE FROM webhook_deliveries WHERE webhook_id = ? AND delivered_at IS NOT NULL AND (delivered_at < ?
              OR cursor < (SELECT cursor FROM webhook_deliveries WHERE webhook_id = ? ORDER BY cursor DESC LIMIT 1 OFFSET ?))`,
      args: [webhookId, now - WEBHOOK_LOG_RETENTION.ms, webhookId, WEBHOOK_LOG_RETENTION.rows - 1],
    },
  ]);
}
