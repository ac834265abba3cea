/**
 * TEST ONLY: a small libSQL remote-protocol endpoint (Hrana 2/3 over HTTP, JSON encoding) in front
 * of an embedded libSQL file, so the Worker's `@libsql/client/web` can run against a real database
 * here, where sqld cannot be installed. Production uses Turso or sqld.
 *
 * What `@libsql/client` 0.18 (`@libsql/hrana-client` 0.10) sends, and what this answers:
 * - `POST /v2/pipeline` (and `/v3/pipeline`): `{ baton?, requests: [...] }` →
 *   `{ baton, base_url: null, results: [{type:"ok", response} | {type:"error", error}] }`.
 *   Requests: execute, batch (steps with ok/error/not/and/or/is_autocommit conditions), sequence,
 *   describe (minimal), store_sql/close_sql (the client caches SQL texts per stream), get_autocommit,
 *   close. The client probes `/v3-protobuf` only when asked for protocol 3; it gets 404 and falls back.
 * - Values: `{type:"null"|"integer"|"float"|"text"|"blob"}`; integers travel as decimal strings
 *   (64-bit exact), blobs as base64.
 * - Batons: a stream that ends a pipeline inside a transaction keeps the (single) connection; other
 *   streams wait until it commits, rolls back, closes or idles out. That is what makes the client's
 *   interactive `transaction()` correct here; plain execute/batch calls open, run and close a stream in
 *   one request and never hold anything.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Database from "libsql";

type HranaValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

type Stmt = {
  sql?: string;
  sql_id?: number;
  args?: HranaValue[];
  named_args?: { name: string; value: HranaValue }[];
  want_rows?: boolean;
};

type Cond =
  | { type: "ok" | "error"; step: number }
  | { type: "not"; cond: Cond }
  | { type: "and" | "or"; conds: Cond[] }
  | { type: "is_autocommit" };

type StreamRequest =
  | { type: "close" | "get_autocommit" }
  | { type: "execute"; stmt: Stmt }
  | { type: "batch"; batch: { steps: { condition?: Cond; stmt: Stmt }[] } }
  | { type: "sequence" | "describe"; sql?: string; sql_id?: number }
  | { type: "store_sql"; sql_id: number; sql: string }
  | { type: "close_sql"; sql_id: number };

type StmtResult = {
  cols: { name: string; decltype: string | null }[];
  rows: HranaValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
  replication_index: null;
};

type Stream = { sqls: Map<number, string>; idle?: NodeJS.Timeout };

class HranaError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

export type HranaServer = {
  /** http://127.0.0.1:<port>: give it to `@libsql/client/web` (or as LIBSQL_URL to the Worker). */
  url: string;
  /** Pipelines served so far (for tests that want to see traffic). */
  pipelines(): number;
  close(): Promise<void>;
};

/** How long a stream may hold the connection between requests before it is rolled back. */
const STREAM_IDLE_MS = 10_000;

function toSql(value: HranaValue): unknown {
  switch (value.type) {
    case "null":
      return null;
    case "integer":
      return BigInt(value.value);
    case "float":
      return value.value;
    case "text":
      return value.value;
    case "blob":
      return Buffer.from(value.base64, "base64");
    default:
      throw new HranaError(`unknown value type ${JSON.stringify((value as { type: unknown }).type)}`);
  }
}

function fromSql(value: unknown): HranaValue {
  if (value === null || value === undefined) {
    return { type: "null" };
  }
  if (typeof value === "bigint") {
    return { type: "integer", value: value.toString() };
  }
  if (typeof value === "number") {
    return { type: "float", value };
  }
  if (typeof value === "string") {
    return { type: "text", value };
  }
  if (value instanceof Uint8Array) {
    return { type: "blob", base64: Buffer.from(value).toString("base64") };
  }
  throw new HranaError(`cannot encode a ${typeof value} from SQLite`);
}

/**
 * Serves `path` (an embedded libSQL/SQLite file, created if missing) over Hrana HTTP on 127.0.0.1.
 * @param options.authToken when set, requests must send `Authorization: Bearer <authToken>`.
 * @example const db = await startHranaServer({ path: "/tmp/x.db" }); createClient({ url: db.url })
 */
export async function startHranaServer(options: {
  path: string;
  authToken?: string;
  port?: number;
}): Promise<HranaServer> {
  const db = new Database(options.path);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  // As the Node gateway sets it on its own file: WAL + NORMAL commits without an fsync each time.
  db.pragma("synchronous = NORMAL");
  const streams = new Map<string, Stream>();
  let owner: string | undefined; // baton key of the stream holding an open transaction
  const waiting: (() => void)[] = [];
  let served = 0;

  /** Frees the connection and wakes every waiter; each re-checks `owner` before it runs. */
  const release = () => {
    owner = undefined;
    for (const wake of waiting.splice(0)) {
      wake();
    }
  };

  const dropStream = (key: string) => {
    const stream = streams.get(key);
    clearTimeout(stream?.idle);
    streams.delete(key);
    if (owner === key) {
      if (db.inTransaction) {
        db.exec("ROLLBACK");
      }
      release();
    }
  };

  const sqlOf = (stream: Stream, holder: { sql?: string; sql_id?: number }): string => {
    if (holder.sql !== undefined) {
      return holder.sql;
    }
    const stored = holder.sql_id === undefined ? undefined : stream.sqls.get(holder.sql_id);
    if (stored === undefined) {
      throw new HranaError(`SQL text with id ${holder.sql_id} is not stored`, "SQL_NOT_FOUND");
    }
    return stored;
  };

  const execute = (stream: Stream, stmt: Stmt): StmtResult => {
    const sql = sqlOf(stream, stmt);
    let prepared: ReturnType<typeof db.prepare<unknown[]>>;
    try {
      prepared = db.prepare<unknown[]>(sql);
    } catch (err) {
      throw sqliteError(err);
    }
    prepared.safeIntegers(true);
    let args: unknown = (stmt.args ?? []).map(toSql);
    if (stmt.named_args?.length) {
      const named: Record<string, unknown> = {};
      for (const { name, value } of stmt.named_args) {
        named[/^[:@$]/.test(name) ? name.slice(1) : name] = toSql(value);
      }
      args = named;
    }
    const bind = (Array.isArray(args) ? args : [args]) as unknown[];
    const changesBefore = totalChanges();
    try {
      if (prepared.reader) {
        prepared.raw(true);
        const cols = prepared.columns().map((c) => ({ name: c.name, decltype: c.type }));
        const rows = (prepared.all(...bind) as unknown[][]).map((row) => row.map(fromSql));
        // RETURNING statements change rows too; report them like sqld does.
        const changed = totalChanges() !== changesBefore;
        return {
          cols,
          rows: stmt.want_rows === false ? [] : rows,
          affected_row_count: changed ? Number(scalar("SELECT changes()")) : 0,
          last_insert_rowid: changed ? String(scalar("SELECT last_insert_rowid()")) : null,
          replication_index: null,
        };
      }
      const info = prepared.run(...bind);
      return {
        cols: [],
        rows: [],
        affected_row_count: Number(info.changes),
        last_insert_rowid: String(info.lastInsertRowid),
        replication_index: null,
      };
    } catch (err) {
      throw sqliteError(err);
    }
  };

  // libsql's pluck() is a no-op; raw() rows are arrays.
  const scalar = (sql: string) => (db.prepare(sql).raw(true).get() as unknown[])[0];
  const totalChanges = () => Number(scalar("SELECT total_changes()"));

  const runBatch = (stream: Stream, steps: { condition?: Cond; stmt: Stmt }[]) => {
    const results: (StmtResult | null)[] = [];
    const errors: ({ message: string; code?: string } | null)[] = [];
    const holds = (cond: Cond): boolean => {
      switch (cond.type) {
        case "ok":
          return results[cond.step] != null;
        case "error":
          return errors[cond.step] != null;
        case "not":
          return !holds(cond.cond);
        case "and":
          return cond.conds.every(holds);
        case "or":
          return cond.conds.some(holds);
        case "is_autocommit":
          return !db.inTransaction;
        default:
          throw new HranaError(`unknown batch condition ${JSON.stringify(cond)}`);
      }
    };
    for (const step of steps) {
      if (step.condition && !holds(step.condition)) {
        results.push(null);
        errors.push(null);
        continue;
      }
      try {
        results.push(execute(stream, step.stmt));
        errors.push(null);
      } catch (err) {
        results.push(null);
        errors.push(errorBody(err));
      }
    }
    return { step_results: results, step_errors: errors };
  };

  const handle = (stream: Stream, request: StreamRequest): Record<string, unknown> => {
    switch (request.type) {
      case "execute":
        return { type: "execute", result: execute(stream, request.stmt) };
      case "batch":
        return { type: "batch", result: runBatch(stream, request.batch.steps) };
      case "sequence":
        try {
          db.exec(sqlOf(stream, request));
        } catch (err) {
          throw sqliteError(err);
        }
        return { type: "sequence" };
      case "describe": {
        const prepared = db.prepare(sqlOf(stream, request));
        const cols = prepared.reader ? prepared.columns().map((c) => ({ name: c.name, decltype: c.type })) : [];
        return { type: "describe", result: { params: [], cols, is_explain: false, is_readonly: prepared.readonly } };
      }
      case "store_sql":
        stream.sqls.set(request.sql_id, request.sql);
        return { type: "store_sql" };
      case "close_sql":
        stream.sqls.delete(request.sql_id);
        return { type: "close_sql" };
      case "get_autocommit":
        return { type: "get_autocommit", is_autocommit: !db.inTransaction };
      case "close":
        return { type: "close" };
      default:
        throw new HranaError(`unknown request type ${JSON.stringify((request as { type: unknown }).type)}`);
    }
  };

  const pipeline = async (body: { baton?: string | null; requests: StreamRequest[] }) => {
    const key = body.baton ?? undefined;
    if (key !== undefined && !streams.has(key)) {
      throw new HttpError(400, "unknown or expired baton");
    }
    // Re-checked after every wake-up, and nothing awaits between this check and the (synchronous)
    // execution below, so two streams never interleave inside one transaction.
    while (owner !== undefined && owner !== key) {
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    served++;
    const stream = (key && streams.get(key)) || { sqls: new Map<number, string>() };
    if (key) {
      clearTimeout(stream.idle);
      streams.delete(key);
    }
    const results = body.requests.map((request) => {
      try {
        return { type: "ok", response: handle(stream, request) };
      } catch (err) {
        return { type: "error", error: errorBody(err) };
      }
    });
    const closed = body.requests.some((r) => r.type === "close");
    if (closed) {
      if (db.inTransaction) {
        db.exec("ROLLBACK");
      }
      release();
      return { baton: null, base_url: null, results };
    }
    const next = randomUUID();
    streams.set(next, stream);
    stream.idle = setTimeout(() => dropStream(next), STREAM_IDLE_MS);
    stream.idle.unref();
    if (db.inTransaction) {
      owner = next;
    } else {
      release();
    }
    return { baton: next, base_url: null, results };
  };

  const server = createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      send(res, status, { message: err instanceof Error ? err.message : String(err) });
    });
  });

  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (options.authToken && req.headers.authorization !== `Bearer ${options.authToken}`) {
      throw new HttpError(401, "missing or wrong auth token");
    }
    if (req.method === "GET" && (path === "/v2" || path === "/v3" || path === "/health")) {
      res.writeHead(200).end();
      return;
    }
    if (req.method === "POST" && (path === "/v2/pipeline" || path === "/v3/pipeline")) {
      const chunks: Buffer[] = [];
      for await (const chunk of req) {
        chunks.push(chunk as Buffer);
      }
      let body: { baton?: string | null; requests: StreamRequest[] };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        throw new HttpError(400, "request body is not JSON");
      }
      if (!Array.isArray(body?.requests)) {
        throw new HttpError(400, "`requests` must be an array");
      }
      send(res, 200, await pipeline(body));
      return;
    }
    throw new HttpError(404, `no route for ${req.method} ${path}`);
  };

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    pipelines: () => served,
    close: () =>
      new Promise<void>((resolve) => {
        for (const key of [...streams.keys()]) {
          dropStream(key);
        }
        server.closeAllConnections();
        server.close(() => {
          db.close();
          resolve();
        });
      }),
  };
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function send(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sqliteError(err: unknown): HranaError {
  const e = err as { message?: string; code?: string };
  return new HranaError(e.message ?? String(err), e.code ?? "SQLITE_ERROR");
}

function errorBody(err: unknown) {
  const e = err instanceof HranaError ? err : sqliteError(err);
  return e.code ? { message: e.message, code: e.code } : { message: e.message };
}
