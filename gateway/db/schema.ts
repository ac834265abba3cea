/**
 * The gateway's durable state. Times are integer milliseconds since the epoch (gateway clock only:
 * leases never depend on an agent's clock). JSON columns hold validated schema values.
 */
import { sql } from "drizzle-orm";
import { HELD_STATES_SQL } from "./state-sql.ts";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex, blob } from "drizzle-orm/sqlite-core";

export const users = sqliteTable("users", {
  name: text("name").primaryKey(),
  admin: integer("admin", { mode: "boolean" }).notNull().default(false),
  createdAt: integer("created_at").notNull(),
  // When an admin disabled the user; null while enabled. Every token and JWT of a disabled user is refused.
  disabledAt: integer("disabled_at"),
});

export const tokens = sqliteTable(
  "tokens",
  {
    id: text("id").primaryKey(),
    hash: text("hash").notNull(),
    kind: text("kind", { enum: ["user", "agent", "admin"] }).notNull(),
    user: text("user"),
    cluster: text("cluster"),
    label: text("label").notNull().default(""),
    prefix: text("prefix").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at"),
    revokedAt: integer("revoked_at"),
    lastUsedAt: integer("last_used_at"),
  },
  (t) => [uniqueIndex("tokens_hash").on(t.hash)],
);

export const clusters = sqliteTable("clusters", {
  name: text("name").primaryKey(),
  config: text("config", { mode: "json" }).notNull(),
  inventory: text("inventory", { mode: "json" }),
  inventoryAt: integer("inventory_at"),
  createdAt: integer("created_at").notNull(),
});

export const grants = sqliteTable(
  "grants",
  {
    user: text("user").notNull(),
    cluster: text("cluster").notNull(),
    partitions: text("partitions", { mode: "json" }).$type<string[]>().notNull(),
    // JSON {accounts, defaultAccount?}; null: the grant names no accounts and Slurm alone decides.
    // Plain text, parsed in the store, so a corrupt row fails closed instead of failing the read.
    accounts: text("accounts"),
  },
  (t) => [primaryKey({ columns: [t.user, t.cluster] })],
);

export const agents = sqliteTable(
  "agents",
  {
    cluster: text("cluster").notNull(),
    agentId: text("agent_id").notNull(),
    version: text("version").notNull().default(""),
    mode: text("mode").notNull().default("local"),
    cycleMs: integer("cycle_ms"),
    lastSeenAt: integer("last_seen_at").notNull(),
    // When the agent said goodbye (SIGTERM); the next lease or inventory clears it.
    stoppedAt: integer("stopped_at"),
    // Whose jobs this agent may run: the token's user (a personal agent), else the slurmgate users
    // a site agent's inventory says it maps (JSON array), else null (an agent that runs all as itself).
    user: text("user"),
    serves: text("serves", { mode: "json" }).$type<string[]>(),
  },
  (t) => [primaryKey({ columns: [t.cluster, t.agentId] })],
);

export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    owner: text("owner").notNull(),
    name: text("name").notNull(),
    state: text("state").notNull(),
    prevState: text("prev_state"),
    reason: text("reason"),
    code: text("code"),
    cluster: text("cluster").notNull(),
    partition: text("partition"),
    attempt: integer("attempt").notNull().default(1),
    epoch: integer("epoch").notNull().default(0),
    leaseOwner: text("lease_owner"),
    leaseExpiresAt: integer("lease_expires_at"),
    claimToken: text("claim_token"),
    runAfter: integer("run_after").notNull().default(0),
    slurmJobId: text("slurm_job_id"),
    exitCode: integer("exit_code"),
    signal: integer("signal"),
    cancelRequested: integer("cancel_requested", { mode: "boolean" }).notNull().default(false),
    spec: text("spec").notNull(),
    labels: text("labels").notNull().default("{}"),
    result: text("result"),
    // An array's tasks as the agent last reported them, a JSON list of JobTask (at most MAX_REPORTED_TASKS).
    tasks: text("tasks"),
    // The rendered batch script, or its head when `script_body` names the body that follows it.
    script: text("script"),
    scriptBody: text("script_body"),
    idempotencyKey: text("idempotency_key"),
    specHash: text("spec_hash"),
    // A sweep element: its sweep and position there (null for a job on its own).
    sweepId: text("sweep_id"),
    sweepIndex: integer("sweep_index"),
    // Elements with the same key may share one Slurm array (services/sweep-group.ts); null: a plain job.
    batchGroup: text("batch_group"),
    // The array the claim put this attempt in, its index there and the array's size (leases.ts).
    batchId: text("batch_id"),
    batchIndex: integer("batch_index"),
    batchSize: integer("batch_size"),
    lastSeq: integer("last_seq").notNull().default(1),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    // GET /v1/jobs reads one of these in page order (newest id first) for each filter it is given,
    // so a page costs a seek and LIMIT rows however much history the table holds (bench: history).
    index("jobs_owner_id").on(t.owner, t.id),
    // A user's jobs in one state, any state; also the per-user cap's count of live jobs.
    index("jobs_owner_state_id").on(t.owner, t.state, t.id),
    index("jobs_owner_cluster_id").on(t.owner, t.cluster, t.id),
    // An admin's list filtered by state or by cluster alone; the lease-expiry sweep's `state = 'leased'`.
    index("jobs_state_id").on(t.state, t.id),
    index("jobs_cluster_id").on(t.cluster, t.id),
    // Claims read one cluster's queued rows in id (queue) order straight off this index…
    index("jobs_claim_queue").on(t.cluster, t.state, t.id),
    // …and its expired leases by expiry time. Partial: only held rows, ~1% of the table; the claim's
    // `state IN (…)` term is written exactly as here, which is what lets SQLite use it.
    index("jobs_held_expiry")
      .on(t.cluster, t.leaseExpiresAt)
      .where(sql.raw(`state IN ${HELD_STATES_SQL}`)),
    // …and, for an agent that runs only some users' jobs, those users' queued rows (migration 0004).
    index("jobs_claim_owner").on(t.cluster, t.owner, t.state, t.id),
    // Cancel orders: only the held jobs whose cancel is pending, so a lease call reads none when there are none.
    index("jobs_cancel_orders")
      .on(t.cluster, t.leaseOwner)
      .where(sql.raw(`cancel_requested = 1 AND state IN ${HELD_STATES_SQL}`)),
    index("jobs_lease_owner").on(t.leaseOwner),
    index("jobs_claim_token").on(t.claimToken),
    uniqueIndex("jobs_idempotency").on(t.owner, t.idempotencyKey).where(sql`idempotency_key IS NOT NULL`),
    // Sweeps (migration 0008). Partial: only elements, so plain jobs pay nothing. A sweep's page of
    // elements in element order; the results stream reads it too.
    index("jobs_sweep_elements").on(t.sweepId, t.sweepIndex).where(sql`sweep_id IS NOT NULL`),
    // Counts per state of one sweep (covering, with the newest change), its cancel, and the capped
    // sweep's "is any element held?" check of every claim.
    index("jobs_sweep_state").on(t.sweepId, t.state, t.updatedAt).where(sql`sweep_id IS NOT NULL`),
    // The claim of one group's queued elements in element order.
    index("jobs_sweep_group").on(t.sweepId, t.batchGroup, t.state, t.sweepIndex).where(sql`batch_group IS NOT NULL`),
    // The takeover of every expired lease of one array at once.
    index("jobs_batch").on(t.batchId, t.state).where(sql`batch_id IS NOT NULL`),
  ],
);

/**
 * Sweeps: many jobs submitted in one request. Each element is an ordinary `jobs` row pointing
 * here; counts and state are folded from the elements when read, never stored twice.
 */
export const sweeps = sqliteTable(
  "sweeps",
  {
    id: text("id").primaryKey(),
    owner: text("owner").notNull(),
    name: text("name").notNull(),
    // The array throttle (%N); a capped sweep is in Slurm one array at a time.
    maxParallel: integer("max_parallel"),
    total: integer("total").notNull(),
    idempotencyKey: text("idempotency_key"),
    specHash: text("spec_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    // GET /v1/sweeps: a user's sweeps, newest first.
    index("sweeps_owner_id").on(t.owner, t.id),
    uniqueIndex("sweeps_idempotency").on(t.owner, t.idempotencyKey).where(sql`idempotency_key IS NOT NULL`),
  ],
);

/**
 * A job's labels, one row each, written with the job: a label filter seeks (owner, key, value) in
 * id order instead of reading the labels JSON of every job the user ever ran. Labels never change.
 */
export const jobLabels = sqliteTable(
  "job_labels",
  {
    jobId: text("job_id").notNull(),
    owner: text("owner").notNull(),
    key: text("key").notNull(),
    value: text("value").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.owner, t.key, t.value, t.jobId] }),
    // An admin's label filter, across owners.
    index("job_labels_key_value").on(t.key, t.value, t.jobId),
  ],
);

export const jobEvents = sqliteTable(
  "job_events",
  {
    jobId: text("job_id").notNull(),
    seq: integer("seq").notNull(),
    at: integer("at").notNull(),
    actor: text("actor").notNull(),
    type: text("type").notNull(),
    state: text("state"),
    detail: text("detail"),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.seq] })],
);

export const jobLogs = sqliteTable(
  "job_logs",
  {
    jobId: text("job_id").notNull(),
    stream: text("stream").notNull(),
    offset: integer("offset").notNull(),
    data: blob("data", { mode: "buffer" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.stream, t.offset] })],
);

/**
 * Webhooks (schemas/webhook.ts). `cursor` is the feed position (job_events rowid) up to which events
 * were taken into `webhook_deliveries`; `secret` is the signing key itself, because signing needs it:
 * the database is as sensitive as the secrets it holds. `lease_until` lets one delivery pass at a time
 * work on a webhook (several Node processes, or the Worker's cron next to a Node gateway).
 */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    owner: text("owner").notNull(),
    url: text("url").notNull(),
    events: text("events").notNull(),
    description: text("description").notNull().default(""),
    scope: text("scope"),
    allUsers: integer("all_users", { mode: "boolean" }).notNull().default(false),
    allowPrivate: integer("allow_private", { mode: "boolean" }).notNull().default(false),
    secret: text("secret").notNull(),
    cursor: integer("cursor").notNull().default(0),
    consecutiveFailures: integer("consecutive_failures").notNull().default(0),
    failingSince: integer("failing_since"),
    retryAt: integer("retry_at").notNull().default(0),
    leaseUntil: integer("lease_until").notNull().default(0),
    disabledAt: integer("disabled_at"),
    disabledReason: text("disabled_reason"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    // GET /v1/webhooks and the per-user count.
    index("webhooks_owner_id").on(t.owner, t.id),
    // The delivery pass: enabled webhooks only.
    index("webhooks_enabled").on(t.id).where(sql`disabled_at IS NULL`),
  ],
);

/** One row per event taken for a webhook: the delivery log, and the queue while `delivered_at` is null. */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    webhookId: text("webhook_id").notNull(),
    cursor: integer("cursor").notNull(),
    jobId: text("job_id").notNull(),
    seq: integer("seq").notNull(),
    type: text("type").notNull(),
    // The JSON body, fixed when the event is taken, so every try sends the same bytes.
    body: text("body").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    nextAt: integer("next_at"),
    deliveredAt: integer("delivered_at"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    // The log, newest first, keyset-paged by cursor.
    primaryKey({ columns: [t.webhookId, t.cursor] }),
    // The queue: a webhook's undelivered events in feed order.
    index("webhook_deliveries_pending").on(t.webhookId, t.cursor).where(sql`delivered_at IS NULL`),
  ],
);

/**
 * Questions for a cluster's agent (schemas/asks.ts), kept until answered or expired. `owner` is who
 * asked: a personal agent takes only its own user's asks. A taken ask is never handed out again; if
 * its agent dies, the asker's wait simply expires.
 */
export const agentAsks = sqliteTable(
  "agent_asks",
  {
    id: text("id").primaryKey(),
    cluster: text("cluster").notNull(),
    owner: text("owner").notNull(),
    kind: text("kind").notNull(),
    body: text("body").notNull(),
    takenBy: text("taken_by"),
    answer: text("answer"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [
    // The lease call's check: a cluster's untaken asks, oldest first.
    index("agent_asks_open").on(t.cluster, t.createdAt).where(sql`taken_by IS NULL`),
    index("agent_asks_expiry").on(t.expiresAt),
  ],
);

/**
 * Script bodies shared by many jobs' rendered scripts (the wrapper's fixed body of a template
 * version), each stored once under its sha256: `jobs.script` holds only the head that precedes it.
 */
export const scriptBodies = sqliteTable("script_bodies", {
  sha256: text("sha256").primaryKey(),
  body: text("body").notNull(),
  createdAt: integer("created_at").notNull(),
});

/** Blobs the store holds (gateway/files): the bytes live there, keyed by sha256 (64 lowercase hex). */
export const blobs = sqliteTable("blobs", {
  sha256: text("sha256").primaryKey(),
  size: integer("size").notNull(),
  createdAt: integer("created_at").notNull(),
  // When the stored copy was last hashed whole and found right, and the store's `version` of that
  // copy (gateway/files/verified-read.ts): kept here so a restart or another isolate trusts it too.
  verifiedAt: integer("verified_at"),
  verifiedVersion: text("verified_version"),
});

/**
 * Who uploaded which blob: a user may reference only blobs they uploaded, and their quota is the
 * sum of these rows. `created_at` is the latest upload of the same bytes (retention counts from it).
 */
export const uploads = sqliteTable(
  "uploads",
  {
    owner: text("owner").notNull(),
    sha256: text("sha256").notNull(),
    size: integer("size").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.owner, t.sha256] }), index("uploads_sha256").on(t.sha256)],
);

/** A job's inputs (spec.inputs), one row each, so retention and the agent's download check find them by blob. */
export const jobInputs = sqliteTable(
  "job_inputs",
  {
    jobId: text("job_id").notNull(),
    path: text("path").notNull(),
    sha256: text("sha256").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.path] }), index("job_inputs_sha256").on(t.sha256)],
);

/** A job's outputs as the agent uploaded them (filled by the outputs routes), per attempt. */
export const jobFiles = sqliteTable(
  "job_files",
  {
    jobId: text("job_id").notNull(),
    // The attempt whose run produced the file: a retry's outputs never replace an earlier attempt's.
    attempt: integer("attempt").notNull(),
    path: text("path").notNull(),
    sha256: text("sha256").notNull(),
    size: integer("size").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.attempt, t.path] }), index("job_files_sha256").on(t.sha256)],
);
