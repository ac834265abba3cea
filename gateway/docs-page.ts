/**
 * A self-contained API reference page rendered from the OpenAPI document: no CDN, no scripts
 * fetched at run time, so it works on an air-gapped site too.
 */
type Operation = { operationId?: string; summary?: string; description?: string; tags?: string[] };
type Doc = { info: { title: string; version: string }; paths: Record<string, Record<string, Operation>> };

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

export function renderDocsPage(doc: Doc): string {
  const rows = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(
      ([
        method,
        op,
      ]) => `<tr><td class="m ${method}">${method.toUpperCase()}</td><td><code>${escapeHtml(path)}</code></td>
        <td><b>${escapeHtml(op.summary ?? "")}</b><br><small>${escapeHtml(op.description ?? "")}</small></td><td>${escapeHtml((op.tags ?? []).join(", "))}</td></tr>`,
    ),
  );
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(doc.info.title)} API</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem;max-width:70rem}td{vertical-align:top;padding:.4rem;border-bottom:1px solid #ddd}
.m{font-weight:bold}.get{color:#0a6}.post{color:#05c}.put{color:#a60}.delete{color:#c22}code{font-size:13px}</style></head>
<body><h1>${escapeHtml(doc.info.title)} <small>${escapeHtml(doc.info.version)}</small></h1>
<p>Machine-readable contract: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Errors are RFC 9457 <code>application/problem+json</code>.</p>
<table>${rows.join("\n")}</table></body></html>`;
}
