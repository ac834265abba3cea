/**
 * Writes client/openapi.json from the gateway's routes. With --check, compares instead and fails
 * when the committed file is stale (CI's drift check).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildOpenApiDocument } from "../openapi.ts";

const target = fileURLToPath(new URL("../../client/openapi.json", import.meta.url));
const text = `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== text) {
    process.stderr.write("client/openapi.json is stale: run `npm run gen` and commit the result\n");
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
}
