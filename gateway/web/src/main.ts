/**
 * The jobs page: sign-in with a token or an OpenID Provider (oidc.ts), then my jobs, one job, clusters and (for admins) users,
 * tokens and grants. Hash routes; every value from the API is rendered as text (Preact escapes).
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { type ApiError, api, SIGNED_OUT, session } from "./api.ts";
import { AdminGrants, AdminTokens, AdminUsers } from "./admin-pages.ts";
import { ClusterPage, ClustersPage } from "./clusters-page.ts";
import { JobPage } from "./job-page.ts";
import { JobsPage, prefetchFirstPage } from "./jobs-page.ts";
import { beginSignIn, type Callback, completeSignIn, issuerName, offeredIssuers, takeCallback } from "./oidc.ts";
import { ErrorLine, html, useRoute } from "./ui.ts";

type Me = { kind: string; user: string | null; via?: { kind: string } };

function SignIn({ onSignedIn, error }: { onSignedIn: (me: Me) => void; error: Error | null }) {
  const [token, setToken] = useState("");
  const [failure, setFailure] = useState<Error | null>(error);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    session.signIn(token.trim());
    try {
      const me = await api<Me>("/v1/me");
      if (me.kind === "agent") {
        throw new Error("An agent token cannot sign in here: use a user or admin token.");
      }
      onSignedIn(me);
    } catch (err) {
      session.signOut();
      setFailure(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const providers = offeredIssuers();
  const viaProvider = (offered: (typeof providers)[number]) => {
    setBusy(true);
    beginSignIn(offered).catch((err: Error) => {
      setFailure(err);
      setBusy(false);
    });
  };
  return html`<main id="main" class="signin">
    <h1>Sign in to slurmgate</h1>
    ${providers.map(
      (p) => html`<p><button type="button" disabled=${busy} onClick=${() => viaProvider(p)}>
        Sign in with ${issuerName(p.issuer)}</button></p>`,
    )}
    <form onSubmit=${submit}>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required value=${token}
        onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
      <p class="hint">A user token (sgu_…) or an admin token (sgk_…), from <code>slurmgate login</code> or your admin.
        It is kept in this tab only (sessionStorage).</p>
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
    <${ErrorLine} error=${failure} />
  </main>`;
}

function Nav({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const admin = me.kind === "admin";
  return html`<header>
    <a class="skip" href="#main" onClick=${(e: Event) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <nav aria-label="Main">
      <a href="#/jobs">Jobs</a>
      <a href="#/clusters">Clusters</a>
      ${admin ? html`<a href="#/admin/users">Users</a><a href="#/admin/tokens">Tokens</a><a href="#/admin/grants">Grants</a>` : null}
      <a href="/docs">API reference</a>
    </nav>
    <span class="who">${me.user ?? me.kind}${admin ? " (admin)" : ""}</span>
    <button type="button" onClick=${onSignOut}>Sign out</button>
  </header>`;
}

function Page({ me }: { me: Me }) {
  const route = useRoute();
  const [first, second, third] = route;
  if (first === "jobs" && second) {
    return html`<${JobPage} id=${second} />`;
  }
  if (first === "clusters" && second) {
    return html`<${ClusterPage} name=${second} />`;
  }
  if (first === "clusters") {
    return html`<${ClustersPage} />`;
  }
  if (first === "admin" && me.kind === "admin") {
    if (second === "users") {
      return html`<${AdminUsers} />`;
    }
    if (second === "tokens") {
      return html`<${AdminTokens} user=${third} />`;
    }
    if (second === "grants") {
      return html`<${AdminGrants} />`;
    }
  }
  if (first === "admin") {
    return html`<main id="main" tabindex="-1"><h1>Not available</h1><p class="error" role="alert">403 Forbidden: only admins see this page.</p></main>`;
  }
  return html`<${JobsPage} />`;
}

function App({ callback }: { callback: Callback | null }) {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(Boolean(session.token() || callback));
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    const signedOut = (e: Event) => {
      setMe(null);
      setError(new Error(`Signed out: ${(e as CustomEvent<string>).detail}`));
    };
    addEventListener(SIGNED_OUT, signedOut);
    return () => removeEventListener(SIGNED_OUT, signedOut);
  }, []);
  useEffect(() => {
    // `checking` as first rendered: the prefetch may have found the sign-in lapsed meanwhile, and
    // /v1/me then says so.
    if (!checking) {
      return;
    }
    (callback ? completeSignIn(callback).then(() => api<Me>("/v1/me")) : api<Me>("/v1/me"))
      .then(setMe)
      .catch((err: ApiError) => {
        session.signOut();
        setError(err);
      })
      .finally(() => setChecking(false));
  }, []);
  if (checking) {
    return html`<p>Checking your token…</p>`;
  }
  if (!me || me.kind === "agent") {
    return html`<${SignIn} onSignedIn=${setMe} error=${error} />`;
  }
  return html`<${Nav} me=${me} onSignOut=${() => {
    session.signOut();
    setMe(null);
  }} /><${Page} me=${me} />`;
}

const root = document.getElementById("app");
if (root) {
  // Before anything else: a provider's answer leaves the address bar (and history) at once.
  const callback = takeCallback();
  if (!callback && session.token() && /^#?\/?(jobs)?$/.test(location.hash)) {
    prefetchFirstPage();
  }
  root.textContent = "";
  render(html`<${App} callback=${callback} />`, root);
}
