/**
 * Starts swagger-ui on /docs. A file, not an inline block, so the page's CSP needs no
 * 'unsafe-inline' script. No validator badge: it would send the document to validator.swagger.io.
 */
type SwaggerUi = (options: Record<string, unknown>) => unknown;
declare const SwaggerUIBundle: SwaggerUi;

const root = document.getElementById("swagger-ui");
if (root) {
  (window as unknown as { ui: unknown }).ui = SwaggerUIBundle({
    url: root.dataset.spec ?? "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    defaultModelExpandDepth: 3,
  });
}
