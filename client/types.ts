/**
 * Friendly names for the generated OpenAPI types. Nothing here exists at run time except the state
 * lists, which are checked against the generated `JobState` union so they cannot drift.
 */
import type { components, paths } from "./generated/api.ts";

type Schemas = components["schemas"];

/**
 * Makes the keys `K` of `T` optional. The generated types describe what the gateway *returns*,
 * where defaulted fields are always present; a request may leave them out.
 * @example type Spec = Defaulted<{ name: string; env: Record<string, string> }, "env">; // env?: …
 */
export type Defaulted<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/**
 * A job as the gateway returns it.
 * @example const job: Job = await client.get("job_01jd7x2k9m4q8r6t5v3w1y0z");
 */
export type Job = Schemas["Job"];
/**
 * A job spec as the gateway stores it (every defaulted field filled in).
 * @example const spec: JobSpec = job.spec;
 */
export type JobSpec = Schemas["JobSpec"];
/**
 * What you submit: a {@link JobSpec} whose defaulted fields may be left out.
 * @example const spec: JobSpecInput = { name: "train", command: ["python", "train.py"] };
 */
export type JobSpecInput = Omit<
  Defaulted<JobSpec, "env" | "secrets" | "setup" | "labels" | "extraSbatchArgs">,
  "container" | "dependsOn" | "retries" | "checkpoint" | "services"
> & {
  container?: Omit<Defaulted<Schemas["Container"], "mountHome">, "binds"> & {
    binds?: Defaulted<Schemas["Bind"], "readonly">[];
  };
  dependsOn?: Defaulted<Schemas["Dependency"], "condition">[];
  retries?: Partial<Schemas["Retries"]>;
  checkpoint?: Defaulted<Schemas["Checkpoint"], "signal">;
  services?: (Omit<Defaulted<Schemas["Service"], "env" | "secrets">, "binds"> & {
    binds?: Defaulted<Schemas["Bind"], "readonly">[];
  })[];
};
/**
 * Where a job would run and why, on every cluster you may use (nothing stored).
 * @example const plan: Preflight = await client.preflight(spec); console.log(plan.cluster, plan.candidates[0]?.reason);
 */
export type Preflight = Schemas["Preflight"];
/**
 * One of the job states.
 * @example const s: JobState = "running";
 */
export type JobState = Schemas["JobState"];
/**
 * One entry of a job's history.
 * @example job.events?.map((e: JobEvent) => e.state);
 */
export type JobEvent = Schemas["JobEvent"];
/**
 * The answer of the long-poll events endpoint.
 * @example const { job, events, lastSeq }: JobEvents = await client.events(id, { after: 0, wait: 20 });
 */
export type JobEvents = Schemas["JobEvents"];

/**
 * One event of the user feed: a job event with its job id and feed position.
 * @example const e: FeedEvent = { jobId: "job_…", seq: 2, at: "…", actor: "agent", type: "state", state: "leased", cursor: "41" };
 */
export type FeedEvent = Schemas["FeedEvent"];
/**
 * A long-poll answer of the feed.
 * @example const { events, cursor }: FeedPage = await (await fetch(url)).json();
 */
export type FeedPage = Schemas["FeedPage"];
/**
 * An array job's tasks, each with its state, exit code and reason, and counts per state.
 * @example const { counts, items }: JobTasks = await client.tasks(id);
 */
export type JobTasks = Schemas["JobTasks"];
/**
 * One task of an array job.
 * @example const failed = (await client.tasks(id)).items.filter((t: JobTask) => t.state === "failed");
 */
export type JobTask = Schemas["JobTask"];
/**
 * One page of `GET /v1/jobs`.
 * @example const { items, nextCursor }: JobPage = await client.listPage({ state: "queued" });
 */
export type JobPage = Schemas["JobPage"];
/**
 * One read of a job's stdout or stderr.
 * @example const chunk: LogChunk = await client.logChunk(id, { offset: 0 });
 */
export type LogChunk = Schemas["LogChunk"];
/**
 * A directory of a job's directory, as its agent listed it (symlinks listed, never followed).
 * @example const names = (await client.browse(id, "results")).entries.map((e) => e.name);
 */
export type DirListing = Schemas["DirListing"];
/**
 * The first or last bytes of a file in a job's directory (`data` is base64).
 * @example const { size } = await client.tail(id, "stdout");
 */
export type FileSlice = Schemas["FileSlice"];
/**
 * A cluster as a user sees it.
 * @example const names = (await client.clusters()).map((c: ClusterView) => c.name);
 */
export type ClusterView = Schemas["ClusterView"];
/**
 * Who a token belongs to.
 * @example const me: Me = await client.me();
 */
export type Me = Schemas["Me"];
/**
 * An RFC 9457 problem document as the gateway sends it.
 * @example if (err instanceof SlurmgateError) console.log((err.problem as Problem | undefined)?.errors);
 */
export type Problem = Schemas["Problem"];

/** One output a job brought back: its path in the job directory, size and sha256. */
export type JobFile = Schemas["JobFile"];
/**
 * A stable machine code of a problem.
 * @example const code: ProblemCode = "validation_failed";
 */
export type ProblemCode = Schemas["ProblemCode"];
/**
 * A user account.
 * @example await client.admin.users.upsert({ name: "alice" } satisfies UserInput);
 */
export type User = Schemas["User"];
/**
 * A user to create or update (`admin` defaults to false).
 * @example const u: UserInput = { name: "alice" };
 */
export type UserInput = Defaulted<User, "admin">;
/**
 * A token's metadata (never its secret).
 * @example const infos: TokenInfo[] = await client.admin.tokens.list();
 */
export type TokenInfo = Schemas["TokenInfo"];
/**
 * A new token with its secret, shown once.
 * @example const { token }: CreatedToken = await client.admin.tokens.create({ kind: "user", user: "alice" });
 */
export type CreatedToken = Schemas["CreatedToken"];
/**
 * A token to create.
 * @example const t: CreateTokenInput = { kind: "agent", cluster: "hpc1" };
 */
export type CreateTokenInput = Defaulted<Schemas["CreateToken"], "label">;
/**
 * A cluster's registration.
 * @example const c: ClusterConfig = (await client.admin.clusters.list())[0]!;
 */
export type ClusterConfig = Schemas["ClusterConfig"];
/**
 * A cluster to register.
 * @example const c: ClusterConfigInput = { name: "hpc1", sharedRoots: ["/scratch"] };
 */
export type ClusterConfigInput = Defaulted<ClusterConfig, "description" | "allowedSbatchArgs" | "profiles">;
/**
 * A user's right to route jobs to a cluster's partitions.
 * @example const g: Grant = { user: "alice", cluster: "hpc1", partitions: ["*"] };
 */
export type Grant = Schemas["Grant"];
/**
 * A grant to create (`partitions` defaults to all).
 * @example const g: GrantInput = { user: "alice", cluster: "hpc1" };
 */
export type GrantInput = Defaulted<Grant, "partitions">;
/**
 * The OpenAPI paths, for typing the `raw` client.
 * @example type SubmitBody = Paths["/v1/jobs"]["post"]["requestBody"];
 */
export type Paths = paths;

/**
 * States a job may still leave.
 * @example LIVE_STATES.includes(job.state)
 */
export const LIVE_STATES = ["queued", "leased", "submitted", "pending", "running"] as const;

/**
 * States a job never leaves.
 * @example TERMINAL_STATES.includes(job.state)
 */
export const TERMINAL_STATES = [
  "completed",
  "failed",
  "cancelled",
  "timeout",
  "out_of_memory",
  "node_fail",
  "preempted",
  "rejected",
  "lost",
] as const;

// Compile-time proof that the two lists cover the generated union exactly: a new state in the
// OpenAPI document fails `tsc` here until it is listed.
type Listed = (typeof LIVE_STATES)[number] | (typeof TERMINAL_STATES)[number];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const listsMatchSpec: Same<Listed, JobState> = true;
void listsMatchSpec;

/**
 * True when a job in this state will never change again.
 * @example if (isTerminal(job.state)) console.log("done:", job.state);
 */
export function isTerminal(state: JobState): boolean {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}
