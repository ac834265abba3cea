/**
 * fast-check arbitraries for HTTP requests, generated from the published OpenAPI document
 * (client/openapi.json): every operation, its path and query parameters and its JSON body, each
 * mostly valid and often hostile (unknown fields, wrong types, deep nesting, huge strings,
 * malformed JSON, wrong content types, odd tokens and paths).
 */
import fc from "fast-check";
import openapi from "../../client/openapi.json" with { type: "json" };

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};

type Parameter = { name: string; in: "path" | "query" | "header"; required?: boolean; schema: Schema };

export type Operation = {
  method: string;
  path: string;
  tag: string;
  parameters: Parameter[];
  body: Schema | undefined;
};

export type TokenName = "user" | "otherUser" | "admin" | "agent" | "otherAgent";

/** One generated request, before it is bound to a target's tokens and URL. */
export type FuzzRequest = {
  method: string;
  path: string;
  token: { kind: "token"; name: TokenName } | { kind: "raw"; header: string } | { kind: "none" };
  contentType: string | undefined;
  body: { kind: "none" } | { kind: "text"; text: string } | { kind: "bytes"; bytes: Uint8Array };
  headers: Record<string, string>;
  operation: string;
};

const doc = openapi as unknown as {
  paths: Record<
    string,
    Record<
      string,
      { tags?: string[]; parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> } }
    >
  >;
  components: { schemas: Record<string, Schema> };
};

export const operations: Operation[] = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => ({
    method: method.toUpperCase(),
    path,
    tag: op.tags?.[0] ?? "",
    parameters: op.parameters ?? [],
    body: op.requestBody?.content["application/json"]?.schema,
  })),
);

function resolve(schema: Schema): Schema {
  let s = schema;
  for (let i = 0; s.$ref && i < 10; i++) {
    s = doc.components.schemas[s.$ref.replace("#/components/schemas/", "")] ?? {};
  }
  return s;
}

/** Long-polls are held up to `wait` seconds: keep valid waits short so the run stays fast. */
const SHORT_WAIT = new Set(["wait"]);

function stringArb(s: Schema): fc.Arbitrary<string> {
  if (s.pattern) {
    try {
      const arb = fc.stringMatching(new RegExp(s.pattern));
      fc.sample(arb, { numRuns: 1, seed: 1 });
      const max = s.maxLength ?? 10_000;
      return arb.map((v) => v.slice(0, max));
    } catch {
      // fast-check cannot generate for this pattern (lookahead): plain strings, mostly refused.
    }
  }
  return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 24, 24) });
}

/** Values that match the schema (as far as fast-check can tell), depth-limited. */
export function schemaValue(schema: Schema, name = "", depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  if (s.enum) {
    return fc.constantFrom(...s.enum);
  }
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    return fc.oneof(...variants.map((v) => schemaValue(v, name, depth)));
  }
  if (s.allOf) {
    return fc
      .tuple(...s.allOf.map((v) => schemaValue(v, name, depth)))
      .map((parts) => Object.assign({}, ...parts.filter((p) => typeof p === "object" && p !== null)));
  }
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : ["object"];
  return fc.oneof(...types.map((type) => schemaValueOfType(s, type, name, depth)));
}

function schemaValueOfType(s: Schema, type: string, name: string, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer": {
      const max = SHORT_WAIT.has(name) ? Math.min(s.maximum ?? 1, 1) : (s.maximum ?? 1_000_000);
      return fc.integer({ min: s.minimum ?? -1_000_000, max });
    }
    case "number":
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case "string":
      return stringArb(s);
    case "array":
      if (depth > 4) {
        return fc.constant([]);
      }
      return fc.array(schemaValue(s.items ?? {}, name, depth + 1), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 3, 3)),
      });
    default: {
      if (depth > 4) {
        return fc.constant({});
      }
      const props = s.properties ?? {};
      const required = new Set(s.required ?? []);
      const known = fc.record(
        Object.fromEntries(Object.entries(props).map(([key, v]) => [key, schemaValue(v, key, depth + 1)])),
        { requiredKeys: [...required].filter((k) => k in props) },
      );
      if (typeof s.additionalProperties === "object") {
        const extra = fc.dictionary(
          fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/),
          schemaValue(s.additionalProperties, "", depth + 1),
          { maxKeys: 3 },
        );
        return fc.tuple(known, extra).map(([a, b]) => ({ ...b, ...a }));
      }
      return known;
    }
  }
}

/** Anything JSON can hold, including the awkward corners. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, true, 0, -0, 1e308, -1, 2 ** 53 + 1, "", " ", "\u0000", "../..", "\n#SBATCH --hold", "💥"),
);

/** Sets, replaces or adds a key somewhere in an object tree. */
function mutate(value: unknown): fc.Arbitrary<unknown> {
  if (typeof value !== "object" || value === null) {
    return junk;
  }
  const keys = Object.keys(value);
  return fc.oneof(
    // An unknown field, at the top or one level down.
    fc
      .tuple(fc.oneof(fc.constantFrom("walltime", "cpus", "__proto__", "constructor", "x"), fc.string()), junk)
      .map(([k, v]) => ({ ...(value as object), [k]: v })),
    // A known field with a value of the wrong type.
    keys.length > 0
      ? fc.tuple(fc.constantFrom(...keys), junk).map(([k, v]) => ({ ...(value as object), [k]: v }))
      : junk,
    // A known object field with an unknown key inside.
    keys.length > 0
      ? fc.constantFrom(...keys).map((k) => {
          const inner = (value as Record<string, unknown>)[k];
          return {
            ...(value as object),
            [k]: typeof inner === "object" && inner !== null && !Array.isArray(inner) ? { ...inner, cpus: 2 } : [inner],
          };
        })
      : junk,
  );
}

const DEEP = 10_000;
const BODY_POOL = 300;
const deepArray = `${"[".repeat(DEEP)}${"]".repeat(DEEP)}`;

type Hostile = { deep: string[]; huge: string[] };

/** Big payloads, built once per run and shared by reference. */
function hostileTexts(bodyLimit: number): Hostile {
  const deepFields = ["labels", "env", "result", "resources", "reports", "holding", "partitions", "command", "spec"];
  const huge = (bytes: number) => JSON.stringify({ name: "huge", command: ["echo", "x".repeat(bytes)] });
  return {
    deep: [
      deepArray,
      `${'{"a":'.repeat(DEEP)}1${"}".repeat(DEEP)}`,
      ...deepFields.map((field) => `{"name":"deep","command":["x"],"agentId":"a","${field}":${deepArray}}`),
      `{"agentId":"a","reports":[{"jobId":"j","epoch":1,"result":${deepArray}}]}`,
    ],
    huge: [
      huge(Math.floor(bodyLimit * 0.9)),
      huge(bodyLimit + 10),
      JSON.stringify({ agentId: "a".repeat(bodyLimit / 2) }),
      JSON.stringify({ name: "n", command: Array.from({ length: 1024 }, () => "y".repeat(40)) }),
    ],
  };
}

/**
 * Bodies the test gateways accept (schema-valid is not enough: a random partition is refused), so
 * the success paths are fuzzed too: idempotent replays, leases, reports, admin writes.
 */
const WORKING: Record<string, fc.Arbitrary<unknown>> = {
  "POST /v1/jobs": fc.record({
    name: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
    command: fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 3 }),
    labels: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
    env: fc.dictionary(fc.stringMatching(/^[A-Z][A-Z0-9_]{0,8}$/), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
  }),
  "POST /v1/agent/lease": fc.record({
    agentId: fc.constantFrom("agent-1", "agent-2"),
    max: fc.integer({ min: 1, max: 5 }),
    wait: fc.constant(0),
  }),
  "POST /v1/admin/users": fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/) }),
  "POST /v1/admin/grants": fc.record({
    user: fc.constantFrom("alice", "bob"),
    cluster: fc.constantFrom("alpha", "beta"),
  }),
};

function bodyFor(op: Operation, hostile: Hostile, seed: number): fc.Arbitrary<FuzzRequest["body"]> {
  // A pool of schema-valid bodies drawn once (a JobSpec costs milliseconds to generate), mutated per request.
  const pooled = op.body
    ? fc.constantFrom(...fc.sample(schemaValue(op.body), { seed, numRuns: BODY_POOL }))
    : fc.constant({});
  const working = WORKING[`${op.method} ${op.path}`];
  const valid = working ? fc.oneof(pooled, working) : pooled;
  const text = (arb: fc.Arbitrary<string>) => arb.map((t) => ({ kind: "text" as const, text: t }));
  return fc.oneof(
    { weight: 10, arbitrary: text(valid.map((v) => JSON.stringify(v))) },
    { weight: 5, arbitrary: text(valid.chain(mutate).map((v) => JSON.stringify(v) ?? "null")) },
    { weight: 2, arbitrary: text(junk.map((v) => JSON.stringify(v) ?? "null")) },
    {
      weight: 2,
      arbitrary: text(
        fc.oneof(
          fc.string(),
          valid.map((v) => JSON.stringify(v).slice(0, -1)),
          fc.constantFrom("{", "{not json", "[1,2", '{"a":1,}', "\uFEFF{}", "NaN", "{'a':1}", '{"a":"\\ud800"}', '"'),
        ),
      ),
    },
    {
      weight: 1,
      arbitrary: text(
        fc.constantFrom(
          ...hostile.deep,
          '{"__proto__":{"admin":true},"name":"p","command":["x"]}',
          '{"constructor":{"prototype":{"admin":true}},"name":"p","command":["x"]}',
          '{"name":"dup","name":"twice","command":["x"]}',
          '{"name":"n","command":["x"],"resources":{"nodes":1e400}}',
        ),
      ),
    },
    { weight: 1, arbitrary: text(fc.constantFrom(...hostile.huge)) },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ maxLength: 64 })
        .map((bytes) => ({ kind: "bytes" as const, bytes: new Uint8Array([0xff, 0xfe, ...bytes]) })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  );
}

const oddSegment = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom(
    "..",
    ".",
    "%2e%2e",
    "%2F",
    "%00",
    "%ZZ",
    "%",
    "a%2Fb",
    "job_00000000000000000000000000",
    "x".repeat(65),
    "x".repeat(5_000),
    "ä",
    "🙂",
    "'; drop table jobs; --",
    "\u0000",
  ),
);

function pathFor(op: Operation, ids: string[]): fc.Arbitrary<string> {
  const params = op.parameters.filter((p) => p.in === "path");
  if (params.length === 0) {
    return fc.constant(op.path);
  }
  const segment = fc.oneof(
    { weight: 3, arbitrary: ids.length > 0 ? fc.constantFrom(...ids) : fc.constant("x") },
    { weight: 1, arbitrary: schemaValue(params[0]?.schema ?? {}).map(String) },
    { weight: 2, arbitrary: oddSegment },
  );
  return fc.tuple(...params.map(() => fc.tuple(segment, fc.boolean()))).map((values) => {
    let path = op.path;
    params.forEach((p, i) => {
      const [value, raw] = values[i] ?? ["x", false];
      // Mostly encoded as a client would; sometimes raw, percent signs and all.
      const text =
        raw && /^[\x21-\x7e]*$/.test(value) && !value.includes("?") && !value.includes("#")
          ? value
          : encodeURIComponent(value);
      path = path.replace(`{${p.name}}`, text);
    });
    return path;
  });
}

function queryFor(op: Operation): fc.Arbitrary<string> {
  const params = op.parameters.filter((p) => p.in === "query");
  const value = (p: Parameter) =>
    fc.oneof(
      { weight: 4, arbitrary: schemaValue(p.schema, p.name).map(String) },
      {
        weight: 1,
        arbitrary: fc.oneof(
          fc.string({ maxLength: 10 }),
          fc.constantFrom("-1", "1e9", "NaN", "0x10", "", "1.5", "99999999999999999999"),
        ),
      },
    );
  const declared = fc.tuple(
    ...params.map((p) =>
      fc.option(
        value(p).map((v) => [p.name, v] as [string, string]),
        { nil: undefined },
      ),
    ),
  );
  const extra = fc.array(
    fc.tuple(
      fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...params.map((p) => p.name).concat("x"))),
      fc.string({ maxLength: 10 }),
    ),
    {
      maxLength: 2,
    },
  );
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.tuple(declared, extra).map(([d, e]) => {
        const pairs = [...d.filter((x): x is [string, string] => x !== undefined), ...e];
        const q = new URLSearchParams(pairs).toString();
        return q ? `?${q}` : "";
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "?%%%",
        "?=&=&",
        "?a=b=c&&",
        "?limit=1&limit=2",
        `?q=${"x".repeat(6_000)}`,
        "?wait=25x",
        "?stream[]=stdout",
      ),
    },
  );
}

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];

/** Mostly the token the route is for, so requests get past auth; often any other or a broken one. */
function tokenArb(tag: string): fc.Arbitrary<FuzzRequest["token"]> {
  const own: TokenName[] =
    tag === "agent" ? ["agent", "otherAgent"] : tag === "admin" ? ["admin"] : ["user", "otherUser", "admin"];
  return fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...own).map((name) => ({ kind: "token" as const, name })) },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom<TokenName>("user", "otherUser", "admin", "agent", "otherAgent")
        .map((name) => ({ kind: "token" as const, name })),
    },
    {
      weight: 2,
      arbitrary: fc
        .oneof(
          fc.constantFrom(
            "Bearer sgu_garbage",
            "Bearer sga_",
            `Bearer sgk_${"A".repeat(43)}`,
            "Bearer",
            "Bearer  ",
            "Basic YWxpY2U6c2VjcmV0",
            "bearer sgu_x y",
            `Bearer ${"x".repeat(8_000)}`,
          ),
          fc.stringMatching(/^[\x21-\x7e]{0,60}$/).map((t) => `Bearer ${t}`),
        )
        .map((header) => ({ kind: "raw" as const, header })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
  );
}

const contentTypeArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant("application/json") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "application/json; charset=utf-8",
      "APPLICATION/JSON",
      "application/problem+json",
      "application/json;;",
      "application/vnd.api+json",
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "text/plain",
      "application/xml",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "",
      "*/*",
      "application/octet-stream",
      "a".repeat(300),
    ),
  },
);

const extraHeadersArb: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    "idempotency-key": fc.oneof(
      fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
      fc.constantFrom("", " ", "k".repeat(300), "a b"),
    ),
    "x-request-id": fc.oneof(
      fc.stringMatching(/^[\w=-]{1,40}$/),
      fc.constantFrom("", "a b", "x".repeat(300), "<script>"),
    ),
    "if-none-match": fc.constantFrom('"x"', "*", 'W/"1"'),
    accept: fc.constantFrom("text/html", "application/xml", "*/*", "application/problem+json"),
  },
  { requiredKeys: [] },
);

/**
 * One request: mostly a declared operation with a valid token; sometimes another method, an
 * unknown path, a foreign token, a hostile body or content type.
 * @param ids real object ids to aim path parameters at (jobs, users, clusters, tokens)
 */
export function requestArb(ids: string[], bodyLimit: number, seed: number): fc.Arbitrary<FuzzRequest> {
  // One arbitrary per operation, built once: building them per request costs far more than sending.
  const hostile = hostileTexts(bodyLimit);
  return fc.oneof(...operations.map((op) => operationArb(op, ids, hostile, seed)));
}

function operationArb(op: Operation, ids: string[], hostile: Hostile, seed: number): fc.Arbitrary<FuzzRequest> {
  const body = bodyFor(op, hostile, seed);
  return fc
    .record({
      method: fc.oneof(
        { weight: 12, arbitrary: fc.constant(op.method) },
        { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
      ),
      path: fc.oneof(
        { weight: 20, arbitrary: pathFor(op, ids) },
        { weight: 1, arbitrary: oddSegment.map((s) => `/v1/${encodeURIComponent(s)}`) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            `${op.path}/`,
            "//v1/jobs",
            "/v1/jobs/../me",
            "/V1/JOBS",
            "/v1/agent/../admin/users",
          ),
        },
      ),
      query: queryFor(op),
      token: tokenArb(op.tag),
      contentType: op.body
        ? contentTypeArb
        : fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: contentTypeArb }),
      body: op.body
        ? body
        : fc.oneof({ weight: 6, arbitrary: fc.constant({ kind: "none" as const }) }, { weight: 1, arbitrary: body }),
      headers: extraHeadersArb,
    })
    .map((r) => ({
      method: r.method,
      path: `${r.path}${r.query}`,
      token: r.token,
      contentType: r.contentType,
      // GET and HEAD cannot carry a body through fetch.
      body: r.method === "GET" || r.method === "HEAD" ? { kind: "none" as const } : r.body,
      headers: r.headers,
      operation: `${op.method} ${op.path}`,
    }));
}

/** A short, printable description of a request for failure reports. */
export function describeRequest(r: FuzzRequest): string {
  const body =
    r.body.kind === "text"
      ? `${r.body.text.length} chars: ${JSON.stringify(r.body.text.slice(0, 200))}`
      : r.body.kind === "bytes"
        ? `${r.body.bytes.length} bytes`
        : "no body";
  const token =
    r.token.kind === "token"
      ? r.token.name
      : r.token.kind === "raw"
        ? JSON.stringify(r.token.header.slice(0, 40))
        : "none";
  return `${r.method} ${r.path.slice(0, 200)} token=${token} content-type=${JSON.stringify(r.contentType)} headers=${JSON.stringify(r.headers).slice(0, 200)} body=${body}`;
}
