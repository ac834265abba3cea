/**
 * The jobs page (`/ui/`, with `/` sending browsers there) and the API reference (`/docs`), served
 * from gateway/web/assets.generated.ts on Node and Workers alike. Asset names carry a content hash
 * and are cached for a year; the HTML is revalidated every time, so a deploy shows at once.
 */
import { Hono } from "hono";
import { type BrowserIssuer, browserIssuers } from "../auth/oidc-config.ts";
import { renderDocsPage } from "../docs-page.ts";
import type { AppEnv, Deps } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { WEB_ASSETS, type WebAsset } from "../web/assets.generated.ts";

/**
 * The page runs only its own script and talks only to this origin and the identity providers it
 * offers sign-in with (discovery and the token endpoint, from the browser): no inline script, no eval.
 */
export function pageCsp(issuers: readonly BrowserIssuer[]): string {
  const idps = [...new Set(issuers.map((i) => new URL(i.issuer).origin))];
  return (
    "default-src 'none'; script-src 'self'; style-src 'self'; " +
    `connect-src ${["'self'", ...idps].join(" ")}; img-src 'self' data:; ` +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
  );
}

/** The page's CSP when no issuer is offered for browsers. */
export const PAGE_CSP = pageCsp([]);

/** swagger-ui sets style attributes from script, so /docs alone allows inline styles (never inline script). */
export const DOCS_CSP = PAGE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'");

const IMMUTABLE = "public, max-age=31536000, immutable";

const byName = new Map<string, WebAsset>(Object.values(WEB_ASSETS).map((a) => [a.name, a]));

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** The issuers to offer ride in a meta tag (data, not script: the CSP needs no exception for it). */
function pageHtml(title: string, issuers: readonly BrowserIssuer[]): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><meta name="slurmgate-oidc" content="${escapeHtml(JSON.stringify(issuers))}"><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/assets/${WEB_ASSETS.appCss.name}">
<script type="module" src="/ui/assets/${WEB_ASSETS.app.name}"></script></head>
<body><div id="app"><p>Loading…</p></div><noscript>This page needs JavaScript; the API is at <a href="/docs">/docs</a>.</noscript></body></html>`;
}

function htmlHeaders(csp: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-cache",
    "content-security-policy": csp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
}

export function webRouter(deps: Deps) {
  const router = new Hono<AppEnv>();
  // Derived once from the configuration: the button list and the CSP can never disagree.
  const offered = browserIssuers(deps.config.SLURMGATE_OIDC_ISSUERS);
  const csp = pageCsp(offered);
  const asset = (name: string) => {
    const found = byName.get(name);
    if (!found) {
      throw new ApiProblem("not_found", `no asset ${name}`);
    }
    return new Response(found.body, {
      headers: { "content-type": found.type, "cache-control": IMMUTABLE, "x-content-type-options": "nosniff" },
    });
  };
  router.get("/", (c) => c.redirect("/ui/", 302));
  router.get("/ui", (c) => c.redirect("/ui/", 301));
  router.get("/ui/", () => new Response(pageHtml("slurmgate", offered), { headers: htmlHeaders(csp) }));
  router.get("/ui/assets/:name", (c) => asset(c.req.param("name")));
  router.get("/docs", () => new Response(renderDocsPage(), { headers: htmlHeaders(DOCS_CSP) }));
  router.get("/docs/assets/:name", (c) => asset(c.req.param("name")));
  return router;
}
