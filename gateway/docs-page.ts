/**
 * The API reference at /docs: swagger-ui (request and response schemas, examples, try-it) rendering
 * /openapi.json, with every file served by the gateway itself (no CDN), so it works air-gapped and
 * under a CSP without inline script: the renderer starts from a script file, not an inline block.
 */
import { WEB_ASSETS } from "./web/assets.generated.ts";

export function renderDocsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>slurmgate API reference</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/assets/${WEB_ASSETS.swaggerCss.name}">
<script src="/docs/assets/${WEB_ASSETS.swaggerJs.name}" defer></script>
<script src="/docs/assets/${WEB_ASSETS.docsInit.name}" defer></script></head>
<body><div id="swagger-ui" data-spec="/openapi.json"><p>Loading the reference… The machine-readable
contract is <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p></div></body></html>`;
}
