/**
 * One job: its state, reason, exit code, result, spec, the events timeline (live over the job's
 * event stream), logs that follow as the agent ships them (long-poll with `wait`), array tasks,
 * cancel and "submit again".
 */
import { useEffect, useState } from "preact/hooks";
import { api, follow, query } from "./api.ts";
import { ErrorLine, go, html, type Job, type JobEvent, labelsText, TERMINAL, when } from "./ui.ts";

/** Keeps the page bounded however much a job prints: older text is dropped from the view. */
const MAX_LOG_CHARS = 2_000_000;

type LogChunk = { data: string; nextOffset: number; complete: boolean };
type Tasks = {
  indexes: string | null;
  items: { task: number; state: string; exitCode: number | null; reason: string | null }[];
};

function Logs({ id, stream, attempt }: { id: string; stream: "stdout" | "stderr"; attempt?: number }) {
  const [text, setText] = useState("");
  const [done, setDone] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    const stop = new AbortController();
    (async () => {
      let offset = 0;
      while (!stop.signal.aborted) {
        try {
          const chunk = await api<LogChunk>(
            `/v1/jobs/${id}/logs${query({ stream, attempt: attempt ? String(attempt) : undefined, offset: String(offset), wait: "20" })}`,
            { signal: stop.signal },
          );
          if (chunk.data) {
            setText((t) => (t + chunk.data).slice(-MAX_LOG_CHARS));
          }
          offset = chunk.nextOffset;
          if (chunk.complete) {
            setDone(true);
            return;
          }
        } catch (err) {
          if (stop.signal.aborted) {
            return;
          }
          setError(err as Error);
          await new Promise((r) => setTimeout(r, 3_000));
        }
      }
    })();
    return () => stop.abort();
  }, [id, stream, attempt]);
  return html`<section aria-labelledby=${`h-${stream}`}>
    <h2 id=${`h-${stream}`}>${stream} ${done ? html`<small>(complete)</small>` : html`<small>(following)</small>`}</h2>
    <${ErrorLine} error=${error} />
    <pre class="log" data-stream=${stream} tabindex="0">${text}</pre>
  </section>`;
}

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [tasks, setTasks] = useState<Tasks | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [news, setNews] = useState("");
  /** The attempt whose logs are shown; undefined follows the latest. */
  const [attempt, setAttempt] = useState<number | undefined>(undefined);

  const reload = () => api<Job>(`/v1/jobs/${id}`).then(setJob).catch(setError);

  useEffect(() => {
    setJob(null);
    setEvents([]);
    reload();
    api<Tasks>(`/v1/jobs/${id}/tasks`)
      .then((t) => setTasks(t.indexes ? t : null))
      .catch(() => {});
    const stop = new AbortController();
    follow(
      `/v1/jobs/${id}/events${query({ after: "0" })}`,
      (_event, data) => {
        const e = data as JobEvent;
        setEvents((current) => (current.some((c) => c.seq === e.seq) ? current : [...current, e]));
        if (e.type === "state" && e.state) {
          setNews(`State: ${e.state}`);
        }
        reload();
      },
      stop.signal,
      setError,
    );
    return () => stop.abort();
  }, [id]);

  const cancel = async () => {
    try {
      await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
      setNews("Cancel requested");
      reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  const again = async () => {
    try {
      const created = await api<Job>("/v1/jobs", { method: "POST", body: job?.spec });
      go(`jobs/${created.id}`);
    } catch (err) {
      setError(err as Error);
    }
  };

  if (!job) {
    return html`<main id="main" tabindex="-1"><h1>Job ${id}</h1><${ErrorLine} error=${error} />${error ? null : html`<p>Loading…</p>`}</main>`;
  }
  const live = !TERMINAL.has(job.state);
  return html`<main id="main" tabindex="-1">
    <p><a href="#/jobs">← All jobs</a></p>
    <h1>${job.name} <small>${job.id}</small></h1>
    <p class="live" aria-live="polite">${news}</p>
    <${ErrorLine} error=${error} />
    <dl class="facts">
      <dt>State</dt><dd><span class=${`state s-${job.state}`} id="job-state">${job.state}</span>${job.cancelRequested && live ? " (cancel requested)" : ""}</dd>
      <dt>Reason</dt><dd>${job.reason ?? "—"}${job.code ? html` <code>${job.code}</code>` : null}</dd>
      <dt>Exit code</dt><dd>${job.exitCode ?? "—"}${job.signal ? ` (signal ${job.signal})` : ""}</dd>
      <dt>Cluster</dt><dd>${job.cluster}${job.partition ? ` / ${job.partition}` : ""}</dd>
      <dt>Slurm job</dt><dd>${job.slurmJobId ?? "—"}</dd>
      <dt>Attempt</dt><dd>${job.attempt}</dd>
      <dt>Labels</dt><dd>${labelsText(job.labels) || "—"}</dd>
      ${job.sweep ? html`<dt>Sweep</dt><dd>${job.sweep.id} #${job.sweep.index}</dd>` : null}
      <dt>Created</dt><dd>${when(job.createdAt)}</dd>
    </dl>
    <div class="actions">
      ${live ? html`<button type="button" class="danger" onClick=${cancel} disabled=${job.cancelRequested}>Cancel job</button>` : null}
      ${job.spec ? html`<button type="button" onClick=${again}>Submit again</button>` : null}
    </div>
    ${job.result !== undefined && job.result !== null ? html`<h2>Result</h2><pre class="json" id="job-result">${JSON.stringify(job.result, null, 2)}</pre>` : null}
    <h2>Events</h2>
    <ol class="timeline">
      ${events.map((e) => html`<li key=${e.seq}><time>${when(e.at)}</time> <b>${e.type === "state" ? e.state : e.type}</b> <small>${e.actor}</small> ${e.detail ?? ""}</li>`)}
    </ol>
    ${
      tasks
        ? html`<h2>Tasks (${tasks.indexes})</h2><table><thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Exit</th><th scope="col">Reason</th></tr></thead>
          <tbody>${tasks.items.map((t) => html`<tr><td>${t.task}</td><td>${t.state}</td><td>${t.exitCode ?? ""}</td><td>${t.reason ?? ""}</td></tr>`)}</tbody></table>`
        : null
    }
    ${
      job.attempt > 1
        ? html`<p><label for="attempt">Logs of attempt</label>
          <select id="attempt" value=${attempt ?? ""} onChange=${(e: Event) => {
            const v = (e.target as HTMLSelectElement).value;
            setAttempt(v ? Number(v) : undefined);
          }}>
            <option value="">latest (${job.attempt})</option>
            ${Array.from({ length: job.attempt }, (_, i) => html`<option value=${i + 1}>${i + 1}</option>`)}
          </select></p>`
        : null
    }
    <${Logs} key=${`out-${attempt}`} id=${id} stream="stdout" attempt=${attempt} />
    <${Logs} key=${`err-${attempt}`} id=${id} stream="stderr" attempt=${attempt} />
    <details><summary>Spec</summary><pre class="json">${JSON.stringify(job.spec, null, 2)}</pre></details>
  </main>`;
}
