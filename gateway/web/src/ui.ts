/** Shared bits of the page: htm bound to Preact, hash routing, small formatting helpers. */
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";

export { html };

export type Job = {
  id: string;
  owner: string;
  name: string;
  state: string;
  reason: string | null;
  code: string | null;
  cluster: string;
  partition: string | null;
  attempt: number;
  slurmJobId: string | null;
  exitCode: number | null;
  signal: number | null;
  cancelRequested: boolean;
  labels: Record<string, string>;
  spec: Record<string, unknown> | null;
  result?: unknown;
  sweep: { id: string; index: number } | null;
  lastSeq: number;
  createdAt: string;
  updatedAt: string;
};

export type JobEvent = { seq: number; at: string; actor: string; type: string; state?: string; detail?: string };

export const TERMINAL = new Set([
  "completed",
  "failed",
  "cancelled",
  "timeout",
  "out_of_memory",
  "node_fail",
  "preempted",
  "rejected",
  "lost",
]);

export const STATES = ["queued", "leased", "submitted", "pending", "running", ...TERMINAL];

/** The hash route, e.g. "#/jobs/job_…" → ["jobs", "job_…"]. */
export function useRoute(): string[] {
  const read = () => (location.hash.replace(/^#\/?/, "") || "jobs").split("/").map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

export const go = (path: string) => {
  location.hash = `#/${path}`;
};

export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : "—");

export const labelsText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");

export function ErrorLine({ error }: { error: Error | null }) {
  return error ? html`<p class="error" role="alert">${error.message}</p>` : null;
}
