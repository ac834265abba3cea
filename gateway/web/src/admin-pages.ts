/** Admin pages: users, tokens and grants, with the simple actions the admin API offers. */
import { useEffect, useState } from "preact/hooks";
import { api, query } from "./api.ts";
import { ErrorLine, html, when } from "./ui.ts";

function useList<T>(path: string): [T[] | null, Error | null, () => void, (e: Error | null) => void] {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const load = () => {
    api<{ items: T[] }>(path)
      .then((r) => setItems(r.items))
      .catch(setError);
  };
  useEffect(load, [path]);
  return [items, error, load, setError];
}

const value = (e: Event) => (e.target as HTMLInputElement).value;

type User = { name: string; admin?: boolean; disabled?: boolean; createdAt?: string };

export function AdminUsers() {
  const [users, error, load, setError] = useList<User>("/v1/admin/users");
  const [name, setName] = useState("");
  const add = async (e: Event) => {
    e.preventDefault();
    try {
      await api("/v1/admin/users", { method: "POST", body: { name: name.trim() } });
      setName("");
      setError(null);
      load();
    } catch (err) {
      setError(err as Error);
    }
  };
  return html`<main id="main" tabindex="-1"><h1>Users</h1>
    <${ErrorLine} error=${error} />
    <table><thead><tr><th scope="col">Name</th><th scope="col">Admin</th><th scope="col">Disabled</th><th scope="col">Created</th><th scope="col">Tokens</th></tr></thead>
      <tbody>${(users ?? []).map(
        (u) => html`<tr><td>${u.name}</td><td>${u.admin ? "yes" : "no"}</td><td>${u.disabled ? "yes" : "no"}</td>
          <td>${when(u.createdAt)}</td><td><a href=${`#/admin/tokens/${encodeURIComponent(u.name)}`}>tokens</a></td></tr>`,
      )}</tbody></table>
    <form onSubmit=${add}><label for="new-user">New user name</label>
      <input id="new-user" required value=${name} onInput=${(e: Event) => setName(value(e))} />
      <button type="submit">Add user</button></form>
  </main>`;
}

type Token = {
  id: string;
  kind: string;
  user: string | null;
  cluster: string | null;
  label: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
};

export function AdminTokens({ user }: { user?: string }) {
  const [tokens, error, load, setError] = useList<Token>(`/v1/admin/tokens${query({ user })}`);
  const revoke = async (t: Token) => {
    try {
      await api(`/v1/admin/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" });
      load();
    } catch (err) {
      setError(err as Error);
    }
  };
  return html`<main id="main" tabindex="-1"><h1>Tokens${user ? ` of ${user}` : ""}</h1>
    <${ErrorLine} error=${error} />
    <table><thead><tr><th scope="col">Prefix</th><th scope="col">Kind</th><th scope="col">User</th><th scope="col">Cluster</th><th scope="col">Label</th>
      <th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Revoked</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${(tokens ?? []).map(
        (
          t,
        ) => html`<tr><td><code>${t.prefix}</code></td><td>${t.kind}</td><td>${t.user ?? "—"}</td><td>${t.cluster ?? "—"}</td>
          <td>${t.label}</td><td>${when(t.createdAt)}</td><td>${when(t.lastUsedAt)}</td><td>${when(t.revokedAt)}</td>
          <td>${t.revokedAt ? null : html`<button type="button" class="danger" onClick=${() => revoke(t)}>Revoke ${t.prefix}</button>`}</td></tr>`,
      )}</tbody></table>
  </main>`;
}

type Grant = { user: string; cluster: string; partitions?: string[]; accounts?: string[] };

export function AdminGrants() {
  const [grants, error, load, setError] = useList<Grant>("/v1/admin/grants");
  const [form, setForm] = useState({ user: "", cluster: "", partitions: "*" });
  const add = async (e: Event) => {
    e.preventDefault();
    try {
      const partitions = form.partitions
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean);
      await api("/v1/admin/grants", {
        method: "POST",
        body: { user: form.user.trim(), cluster: form.cluster.trim(), partitions },
      });
      setError(null);
      load();
    } catch (err) {
      setError(err as Error);
    }
  };
  const remove = async (g: Grant) => {
    try {
      await api(`/v1/admin/grants/${encodeURIComponent(g.user)}/${encodeURIComponent(g.cluster)}`, {
        method: "DELETE",
      });
      load();
    } catch (err) {
      setError(err as Error);
    }
  };
  return html`<main id="main" tabindex="-1"><h1>Grants</h1>
    <${ErrorLine} error=${error} />
    <table><thead><tr><th scope="col">User</th><th scope="col">Cluster</th><th scope="col">Partitions</th><th scope="col">Accounts</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${(grants ?? []).map(
        (
          g,
        ) => html`<tr><td>${g.user}</td><td>${g.cluster}</td><td>${(g.partitions ?? ["*"]).join(", ")}</td><td>${(g.accounts ?? []).join(", ") || "any"}</td>
          <td><button type="button" class="danger" onClick=${() => remove(g)}>Remove ${g.user} on ${g.cluster}</button></td></tr>`,
      )}</tbody></table>
    <form class="filters" onSubmit=${add}>
      <div><label for="g-user">User</label><input id="g-user" required value=${form.user} onInput=${(e: Event) => setForm({ ...form, user: value(e) })} /></div>
      <div><label for="g-cluster">Cluster</label><input id="g-cluster" required value=${form.cluster} onInput=${(e: Event) => setForm({ ...form, cluster: value(e) })} /></div>
      <div><label for="g-partitions">Partitions (comma-separated, * for all)</label><input id="g-partitions" value=${form.partitions} onInput=${(e: Event) => setForm({ ...form, partitions: value(e) })} /></div>
      <button type="submit">Grant</button>
    </form>
  </main>`;
}
