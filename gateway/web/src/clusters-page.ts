/** Clusters: health at a glance, then one cluster's partitions, GPUs, agents and what I may use. */
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import { ErrorLine, html, when } from "./ui.ts";

type Partition = {
  name: string;
  default: boolean;
  state: string;
  nodes: number;
  maxTimeSeconds: number | null;
  maxCpusPerNode: number;
  maxMemMBPerNode: number;
  maxNodes: number | null;
  gpus: { type: string; count: number }[];
};
type Cluster = {
  name: string;
  description: string;
  alive: boolean;
  lastSeenAt: string | null;
  stoppedAt: string | null;
  partitions: string[];
  inventory: { slurmVersion: string; partitions: Partition[] } | null;
  agents: {
    agentId: string;
    version: string;
    lastSeenAt: string;
    stoppedAt: string | null;
    cycleMs: number | null;
    mode: string;
  }[];
  profiles: string[];
};

function useClusters() {
  const [items, setItems] = useState<Cluster[] | null>(null);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    api<{ items: Cluster[] }>("/v1/clusters")
      .then((r) => setItems(r.items))
      .catch(setError);
  }, []);
  return { items, error };
}

const health = (c: Cluster) =>
  c.alive ? "up" : c.stoppedAt ? `stopped ${when(c.stoppedAt)}` : "no agent seen recently";

const duration = (s: number | null) =>
  s === null ? "unlimited" : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : `${Math.round(s / 60)} min`;

export function ClustersPage() {
  const { items, error } = useClusters();
  return html`<main id="main" tabindex="-1">
    <h1>Clusters</h1>
    <${ErrorLine} error=${error} />
    ${items === null && !error ? html`<p>Loading…</p>` : null}
    <ul class="clusters">
      ${(items ?? []).map(
        (c) => html`<li><a href=${`#/clusters/${encodeURIComponent(c.name)}`}>${c.name}</a> —
          <span class=${c.alive ? "ok" : "bad"}>${health(c)}</span> <small>${c.description}</small></li>`,
      )}
    </ul>
  </main>`;
}

export function ClusterPage({ name }: { name: string }) {
  const { items, error } = useClusters();
  const c = items?.find((x) => x.name === name);
  if (!c) {
    return html`<main id="main" tabindex="-1"><h1>Cluster ${name}</h1><${ErrorLine} error=${error} />
      ${items ? html`<p role="alert">No cluster ${name} is visible to you.</p>` : error ? null : html`<p>Loading…</p>`}</main>`;
  }
  const allowed = new Set(c.partitions);
  return html`<main id="main" tabindex="-1">
    <p><a href="#/clusters">← All clusters</a></p>
    <h1>${c.name}</h1>
    <p>${c.description} — <span class=${c.alive ? "ok" : "bad"}>${health(c)}</span>${c.inventory ? ` — Slurm ${c.inventory.slurmVersion}` : ""}</p>
    <h2>Partitions</h2>
    <table>
      <thead><tr><th scope="col">Partition</th><th scope="col">State</th><th scope="col">Nodes</th><th scope="col">Max time</th>
        <th scope="col">CPUs/node</th><th scope="col">Memory/node</th><th scope="col">GPUs (type × per node)</th><th scope="col">Granted to me</th></tr></thead>
      <tbody>${(c.inventory?.partitions ?? []).map(
        (p) => html`<tr><td>${p.name}${p.default ? " (default)" : ""}</td><td>${p.state}</td><td>${p.nodes}</td>
          <td>${duration(p.maxTimeSeconds)}</td><td>${p.maxCpusPerNode}</td><td>${p.maxMemMBPerNode} MB</td>
          <td>${p.gpus.map((g) => `${g.type} × ${g.count}`).join(", ") || "—"}</td>
          <td>${allowed.has(p.name) || allowed.has("*") ? "yes" : "no"}</td></tr>`,
      )}</tbody>
    </table>
    <h2>My grant</h2>
    <p>${c.partitions.length ? `Partitions: ${c.partitions.join(", ")}` : "You have no grant on this cluster."}
      ${c.profiles.length ? ` Profiles: ${c.profiles.join(", ")}.` : ""}</p>
    <h2>Agents</h2>
    <table><thead><tr><th scope="col">Agent</th><th scope="col">Version</th><th scope="col">Mode</th><th scope="col">Last seen</th><th scope="col">Cycle</th><th scope="col">Stopped</th></tr></thead>
      <tbody>${c.agents.map(
        (a) => html`<tr><td>${a.agentId}</td><td>${a.version}</td><td>${a.mode}</td><td>${when(a.lastSeenAt)}</td>
          <td>${a.cycleMs === null ? "—" : `${Math.round(a.cycleMs)} ms`}</td><td>${a.stoppedAt ? when(a.stoppedAt) : "—"}</td></tr>`,
      )}</tbody></table>
  </main>`;
}
