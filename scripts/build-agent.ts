/**
 * `npm run build:agent`: bundles the cluster agent into ONE file, dist/slurmgate-agent.mjs, that
 * runs on Node >= 20 with no node_modules (login nodes often have an old Node and no npm). Every
 * dependency is inlined; ssh2's optional native add-ons (cpu-features, sshcrypto.node) are left
 * out: ssh2 already falls back to pure JavaScript when they are missing.
 */
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

// ESM output, but ssh2 is CommonJS: give it `require`, `__filename` and `__dirname`.
const BANNER = [
  "#!/usr/bin/env node",
  "// slurmgate agent: one file, no dependencies. Run: node slurmgate-agent.mjs --help",
  'import { createRequire as __sgCreateRequire } from "node:module";',
  'import { fileURLToPath as __sgFileURLToPath } from "node:url";',
  'import { dirname as __sgDirname } from "node:path";',
  "const require = __sgCreateRequire(import.meta.url);",
  "const __filename = __sgFileURLToPath(import.meta.url);",
  "const __dirname = __sgDirname(__filename);",
  // agent/main.ts runs main() when it sees this, whatever the file is called or symlinked as.
  "globalThis.__SLURMGATE_AGENT_BUNDLE__ = true;",
].join("\n");

export type AgentBuild = { file: string; bytes: number };

export async function buildAgent(outfile = join(ROOT, "dist/slurmgate-agent.mjs")): Promise<AgentBuild> {
  const result = await build({
    entryPoints: [join(ROOT, "agent/main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    minify: false,
    sourcemap: false,
    legalComments: "eof",
    logLevel: "warning",
    banner: { js: BANNER },
    // Optional native speed-ups of ssh2, loaded in try/catch: absent at run time on purpose.
    external: ["cpu-features", "*.node"],
  });
  if (result.errors.length) {
    throw new Error(result.errors.map((e) => e.text).join("\n"));
  }
  chmodSync(outfile, 0o755);
  return { file: outfile, bytes: statSync(outfile).size };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  buildAgent(process.argv[2]).then(
    (b) => process.stdout.write(`${b.file}: ${(b.bytes / 1024).toFixed(1)} KiB\n`),
    (err: Error) => {
      process.stderr.write(`build:agent: ${err.message}\n`);
      process.exit(1);
    },
  );
}
