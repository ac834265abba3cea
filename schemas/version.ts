/**
 * The release every part reports (gateway `/healthz` and OpenAPI document, agent inventory, CLI
 * `--version`). It must equal package.json's `version`; a unit test holds them together, since the
 * Worker and the agent bundle cannot read package.json at run time.
 */
export const VERSION = "0.1.0";
