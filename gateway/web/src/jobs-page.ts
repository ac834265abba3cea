/**
 * My jobs: filters map onto GET /v1/jobs (state, cluster, label) or a sweep's own keyset pages;
 * "More" follows nextCursor, never an offset. Live: the user's event stream names the job that
 * changed; the page re-reads that one job and puts it in place (or on top, if it is new and fits).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { api, follow, query } from "./api.ts";
import { ErrorLine, go, html, type Job, labelsText, STATES, when } from "./ui.ts";

type Filters = { state: string; cluster: string; label: string; sweep: string };
type Row = Pick<Job, "id" | "name" | "state" | "cluster" | "labels" | "exitCode" | "reason"> & { createdAt?: string };

const PAGE = 50;

const NO_FILTERS: Filters = { state: "", cluster: "", label: "", sweep: "" };

async function loadPage(f: Filters, cursor: string | null) {
  if (f.sweep) {
    const page = await api<{ elements: (Row & { jobId: string })[]; nextCursor: string | null }>(
      `/v1/sweeps/${encodeURIComponent(f.sweep)}${query({ cursor: cursor ?? undefined, limit: String(PAGE) })}`,
    );
    const rows = page.elements
      .map((e) => ({ ...e, id: e.jobId, cluster: "" }))
      .filter((r) => (!f.state || r.state === f.state) && matchesLabel(r, f.label));
    return { rows, next: page.nextCursor };
  }
  const page = await api<{ items: Job[]; nextCursor: string | null }>(
    `/v1/jobs${query({ state: f.state, cluster: f.cluster, label: f.label, cursor: cursor ?? undefined, limit: String(PAGE) })}`,
  );
  return { rows: page.items as Row[], next: page.nextCursor };
}

function matchesLabel(job: Pick<Job, "labels">, label: string) {
  if (!label) {
    return true;
  }
  const eq = label.indexOf("=");
  return eq > 0 && job.labels[label.slice(0, eq)] === label.slice(eq + 1);
}

function matches(job: Job, f: Filters) {
  return (
    (!f.state || job.state === f.state) &&
    (!f.cluster || job.cluster === f.cluster) &&
    matchesLabel(job, f.label) &&
    (!f.sweep || job.sweep?.id === f.sweep)
  );
}

/**
 * Where the live feed starts, taken before the first page is read: an event that happens between
 * the read and the stream's start is then replayed by the stream, not lost (the row is put in
 * place once either way).
 */
type Start = { cursor: Promise<string | undefined>; page: Promise<{ rows: Row[]; next: string | null }> };

function start(filters: Filters): Start {
  const cursor = api<{ cursor: string }>("/v1/events?wait=0").then(
    (r) => r.cursor,
    () => undefined,
  );
  const page = cursor.then(() => loadPage(filters, null));
  page.catch(() => {});
  return { cursor, page };
}

/**
 * The unfiltered first page (and the feed cursor before it), asked for at script start alongside
 * /v1/me instead of after it: one round trip less before the first rows. Used once.
 */
let prefetched: Start | undefined;
export function prefetchFirstPage() {
  prefetched = start(NO_FILTERS);
}

/**
 * Keeps `setRows` current from the user's event stream: one read per job at a time, and events that
 * arrive during it cause one more read after it, so a burst costs two reads and an older answer
 * never overwrites a newer one.
 */
function useLiveRows(
  startRef: { current: Start | null },
  filtersRef: { current: Filters },
  setRows: (update: (current: Row[]) => Row[]) => void,
  setNews: (news: string) => void,
  setError: (err: Error) => void,
) {
  useEffect(() => {
    const stop = new AbortController();
    const reading = new Set<string>();
    const again = new Set<string>();
    const refresh = async (jobId: string): Promise<void> => {
      if (reading.has(jobId)) {
        again.add(jobId);
        return;
      }
      reading.add(jobId);
      try {
        const job = await api<Job>(`/v1/jobs/${jobId}`, { signal: stop.signal });
        const fits = matches(job, filtersRef.current);
        setRows((current) => {
          const at = current.findIndex((r) => r.id === job.id);
          if (at >= 0) {
            return fits
              ? current.map((r) => (r.id === job.id ? { ...r, ...job } : r))
              : current.filter((r) => r.id !== job.id);
          }
          return fits ? [job, ...current] : current;
        });
        if (fits) {
          setNews(`${job.name} (${job.id}) is ${job.state}`);
        }
      } catch {
        // gone, not ours, or the page is leaving: nothing to show
      } finally {
        reading.delete(jobId);
      }
      if (again.delete(jobId) && !stop.signal.aborted) {
        await refresh(jobId);
      }
    };
    const feed = (startRef.current as Start).cursor.then((cursor) =>
      follow(
        `/v1/events${query({ after: cursor })}`,
        (_event, data) => {
          const jobId = (data as { jobId?: string }).jobId;
          if (jobId) {
            void refresh(jobId);
          }
        },
        stop.signal,
        setError,
      ),
    );
    feed.catch(() => {});
    return () => stop.abort();
  }, []);
}

function FilterForm({ clusters, onApply }: { clusters: string[]; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const set = (key: keyof Filters) => (e: Event) =>
    setDraft({ ...draft, [key]: (e.target as HTMLInputElement | HTMLSelectElement).value });
  return html`<form class="filters" onSubmit=${(e: Event) => {
    e.preventDefault();
    onApply({ ...draft, label: draft.label.trim(), sweep: draft.sweep.trim() });
  }}>
      <div><label for="f-state">State</label>
        <select id="f-state" value=${draft.state} onChange=${set("state")}>
          <option value="">any</option>
          ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></div>
      <div><label for="f-cluster">Cluster</label>
        <select id="f-cluster" value=${draft.cluster} onChange=${set("cluster")}>
          <option value="">any</option>
          ${clusters.map((c) => html`<option value=${c}>${c}</option>`)}
        </select></div>
      <div><label for="f-label">Label (key=value)</label>
        <input id="f-label" value=${draft.label} onInput=${set("label")} placeholder="project=demo" /></div>
      <div><label for="f-sweep">Sweep id</label>
        <input id="f-sweep" value=${draft.sweep} onInput=${set("sweep")} placeholder="swp_…" /></div>
      <button type="submit">Apply filters</button>
    </form>`;
}

function JobsTable({ rows }: { rows: Row[] }) {
  return html`<table class="jobs">
      <caption class="sr-only">Jobs, newest first</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Cluster</th>
        <th scope="col">Labels</th><th scope="col">Exit</th><th scope="col">Created</th></tr></thead>
      <tbody>
        ${rows.map(
          (r) => html`<tr key=${r.id} data-job=${r.id} tabindex="0" class="row"
            onClick=${() => go(`jobs/${r.id}`)}
            onKeyDown=${(e: KeyboardEvent) => e.key === "Enter" && go(`jobs/${r.id}`)}>
            <td><a href=${`#/jobs/${r.id}`} tabindex="-1">${r.name}</a> <small>${r.id}</small></td>
            <td><span class=${`state s-${r.state}`}>${r.state}</span></td>
            <td>${r.cluster}</td>
            <td>${labelsText(r.labels ?? {})}</td>
            <td>${r.exitCode ?? ""}</td>
            <td>${when(r.createdAt)}</td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}

export function JobsPage() {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [rows, setRows] = useState<Row[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [news, setNews] = useState("");
  const [clusters, setClusters] = useState<string[]>([]);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const startRef = useRef<Start | null>(null);
  if (!startRef.current) {
    startRef.current = prefetched ?? start(NO_FILTERS);
    prefetched = undefined;
  }

  useEffect(() => {
    api<{ items: { name: string }[] }>("/v1/clusters")
      .then((r) => setClusters(r.items.map((c) => c.name)))
      .catch(() => {});
  }, []);

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(null);
    const first = filters === NO_FILTERS && startRef.current ? startRef.current.page : loadPage(filters, null);
    first
      .then((p) => {
        if (live) {
          setRows(p.rows);
          setNext(p.next);
        }
      })
      .catch((err) => live && setError(err))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [filters]);

  useLiveRows(startRef, filtersRef, setRows, setNews, setError);

  const more = async () => {
    try {
      const p = await loadPage(filters, next);
      setRows((current) => [...current, ...p.rows.filter((r) => !current.some((c) => c.id === r.id))]);
      setNext(p.next);
    } catch (err) {
      setError(err as Error);
    }
  };

  return html`<main id="main" tabindex="-1">
    <h1>My jobs</h1>
    <${FilterForm} clusters=${clusters} onApply=${setFilters} />
    <p class="live" aria-live="polite" id="live-news">${news}</p>
    <${ErrorLine} error=${error} />
    ${loading ? html`<p>Loading…</p>` : null}
    <${JobsTable} rows=${rows} />
    ${!loading && rows.length === 0 ? html`<p>No jobs match.</p>` : null}
    ${next ? html`<button type="button" onClick=${more}>More</button>` : null}
  </main>`;
}
