/**
 * The agent's Slurm access through slurmrestd: submit, list the queue and cancel over REST; the
 * rest (sacct, sinfo, scontrol, sacctmgr, versions) stays on the CLI path, which `cli` runs.
 * Same contract as the CLI commands: every method returns a SlurmResult and never throws, and an
 * answer that never came is an unknown outcome (look the tag up before any retry).
 */
import { readFile, stat } from "node:fs/promises";
import { type Lane, type LaneCall, laneCall } from "../executor/lane.ts";
import type { SlurmCommands } from "../slurm-commands.ts";
import { checkJobIds } from "../slurm/fields.ts";
import { type SlurmFailure, failed, succeeded } from "../slurm/result.ts";
import { buildSbatchArgs } from "../slurm/sbatch.ts";
import { type RestClient, type RestResponse, RestTransportError } from "./client.ts";
import { buildRestSubmission } from "./job-properties.ts";
import type { SqueueRow } from "../slurm/squeue.ts";
import { listingTime, parseRestJobs, readCancelResponse, readSubmitResponse, restErrors } from "./responses.ts";

/** The OpenAPI plugin the backend speaks (slurmrestd 22.05 ships v0.0.36–38). */
export const REST_API = "/slurm/v0.0.38";

/** The queue is listed in full at least this often, whatever `update_time` says. */
const FULL_LISTING_MS = 60_000;

/** A batch script bigger than this is not one the renderer wrote. */
const MAX_SCRIPT_BYTES = 4 * 1024 * 1024;

export function createRestSlurmCommands(options: {
  client: RestClient;
  /** The CLI commands, for what stays on the CLI path. */
  cli: SlurmCommands;
  /** Queue rows of other users are ignored (with local auth, the daemon's user; with JWT, the token's). */
  user: string;
}): SlurmCommands {
  const { client, cli } = options;
  /** The last full listing, and the controller time it is valid from (see {@link listingTime}). */
  let listing: { rows: SqueueRow[]; since: number; at: number } | null = null;
  /** One request; a lost or unreadable answer becomes a failure with the transport's code. */
  const call = async (
    what: string,
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<{ ok: true; value: RestResponse } | SlurmFailure<"unreachable" | "timeout" | "transient">> => {
    try {
      return succeeded(await client.request(method, path, body));
    } catch (err) {
      const kind = err instanceof RestTransportError ? err.kind : "unreachable";
      const message = `${what}: ${(err as Error)?.message ?? String(err)}`;
      return failed(kind === "bad_response" ? "transient" : kind, message, true);
    }
  };

  return {
    ...cli,
    async sbatch(scriptPath, args, script) {
      let submission: ReturnType<typeof buildRestSubmission>;
      try {
        // The CLI's argument rules first, so both backends refuse the same arguments.
        buildSbatchArgs(scriptPath, args);
        const size = script === undefined ? (await stat(scriptPath)).size : Buffer.byteLength(script);
        if (size > MAX_SCRIPT_BYTES) {
          throw new Error(`${scriptPath} is larger than ${MAX_SCRIPT_BYTES} bytes`);
        }
        submission = buildRestSubmission(script ?? (await readFile(scriptPath, "utf8")), args);
      } catch (err) {
        return failed("invalid_argument", `sbatch (slurmrestd): ${(err as Error).message}`, false);
      }
      const send = async () => {
        const sent = await call("job submit", "POST", `${REST_API}/job/submit`, submission);
        return sent.ok ? readSubmitResponse(sent.value) : sent;
      };
      const lane = laneCall();
      const withdrawn = () =>
        failed("unreachable", "job submit: withdrawn before it was sent; it never reached slurmrestd", true);
      return lane && !lane.claimed ? sendInLane(lane, send, withdrawn) : send();
    },
    async squeue() {
      // slurmrestd renders the whole queue (every user's: v0.0.38 cannot filter) as JSON, seconds of
      // work for a few thousand jobs; when Slurm changed nothing since the last listing it says 304.
      const now = Date.now();
      const reuse = listing && now - listing.at < FULL_LISTING_MS ? listing : null;
      const query = reuse ? `?update_time=${reuse.since}` : "";
      const got = await call("jobs", "GET", `${REST_API}/jobs${query}`);
      if (!got.ok) {
        return failed(got.code === "transient" ? "failed" : got.code, got.message, true);
      }
      if (got.value.status === 304 && reuse) {
        return succeeded([...reuse.rows]);
      }
      const errors = restErrors(got.value.body);
      if (got.value.status !== 200 || errors.length > 0) {
        // A partial list would read as "gone" for the jobs it lacks: no list at all instead.
        listing = null;
        return failed("failed", `jobs: HTTP ${got.value.status} ${errors.join("; ")}`.trim(), true);
      }
      const rows = parseRestJobs(got.value.body, options.user);
      const since = listingTime(got.value.body);
      // One second back: Slurm's clock has whole seconds, and a change in the listing's own second counts.
      listing = since > 1 ? { rows, since: since - 1, at: now } : null;
      return succeeded([...rows]);
    },
    async scancel(ids) {
      try {
        checkJobIds(ids);
      } catch (err) {
        return failed("invalid_argument", `scancel (slurmrestd): ${(err as Error).message}`, false);
      }
      const gone: string[] = [];
      const other: string[] = [];
      for (const id of ids) {
        const sent = await call(`cancel ${id}`, "DELETE", `${REST_API}/job/${id}`);
        if (!sent.ok) {
          return failed(sent.code === "transient" ? "failed" : sent.code, sent.message, true);
        }
        const outcome = readCancelResponse(sent.value);
        if (outcome === "gone") {
          gone.push(id);
        } else if (outcome !== null) {
          other.push(`${id}: ${outcome}`);
        }
      }
      return other.length === 0 ? succeeded({ gone }) : failed("failed", other.join("; "), true);
    },
  };
}

/** Each lane's last submission: the lane's next one is sent the moment it has its answer. */
const laneTails = new WeakMap<Lane, Promise<unknown>>();

/**
 * A submission lane over REST (agent/executor/lane.ts), as the spawner keeps one for sbatch: the
 * request is built now and queued behind the lane's request in flight, so it goes out the moment that
 * one is answered instead of after a turn through the agent; one request in flight per lane. The
 * caller wrote the job's "submitting" record before this, so a request sent later is still one a
 * restarted agent looks up by tag. Withdrawn before it went out, it never does, and reads as an
 * answer that never came (looked up by tag, never taken for a refusal).
 */
function sendInLane<T>(call: LaneCall, send: () => Promise<T>, withdrawnAnswer: () => T): Promise<T> {
  call.claimed = true;
  let withdrawn = false;
  const before = laneTails.get(call.lane) ?? Promise.resolve();
  const result = before.then(() => (withdrawn ? withdrawnAnswer() : send()));
  laneTails.set(call.lane, result.then(noop, noop));
  call.cancel = () => {
    withdrawn = true;
  };
  call.handedOver();
  return result.finally(() => {
    call.cancel = undefined;
  });
}

const noop = () => {};

/** Whether the daemon answers a ping: null when it does, else why not (for the agent's doctor). */
export async function pingRest(client: RestClient): Promise<string | null> {
  try {
    const res = await client.request("GET", `${REST_API}/ping`);
    const errors = restErrors(res.body);
    return res.status === 200 && errors.length === 0
      ? null
      : `slurmrestd answered HTTP ${res.status}${errors.length ? `: ${errors.join("; ")}` : ""}`;
  } catch (err) {
    return (err as Error).message;
  }
}
