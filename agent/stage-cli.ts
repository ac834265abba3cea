/**
 * `slurmgate agent stage SOURCE NAME [--kind model|image]`, `--list`, `--remove REF`: the login
 * node's side of offline clusters. Reads only SLURMGATE_SHARED_ROOTS and SLURMGATE_CACHE_ROOT
 * (environment, or `--config FILE`): staging needs no gateway.
 */
import { readFileSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { parseArgs } from "node:util";
import { CACHE_KINDS, type CacheKind } from "../schemas/cache.ts";
import { AgentConfig, parseEnvFile } from "./config.ts";
import { StageError, checkCacheRoot, listCaches, removeCache, stageCache } from "./stage.ts";

export const STAGE_HELP = `usage: slurmgate agent stage SOURCE NAME [--kind model|image] [--sha256 HEX] [--max-bytes N] [--config FILE]
       slurmgate agent stage --list [--config FILE]
       slurmgate agent stage --remove REF [--config FILE]

Copies a model directory or a .sif image (a local path or a file:// URL) into the agent's cache
root (SLURMGATE_CACHE_ROOT, under one of SLURMGATE_SHARED_ROOTS) as models/NAME or images/NAME.sif.
SOURCE may also be an https:// URL, downloaded from this (login) node: an image by default, or with
--kind model one file of a model (named by the URL's last path segment). Redirects are followed on
https:// only; plain http:// is refused. --sha256 HEX (or the URL's #sha256=HEX) is checked, and
--max-bytes N (default 64 GiB) caps the download. The copy is verified (size and sha256) and then
renamed into place, so a stage that is interrupted or fails a check leaves nothing half-staged.
Jobs name what they need as "cache": ["models/NAME"]. Extra CA certificates for https://:
NODE_EXTRA_CA_CERTS=FILE.

Examples:
  slurmgate agent stage ~/hf/llama-3.1-8b llama-3.1-8b
  slurmgate agent stage /scratch/vllm.sif vllm --kind image
  slurmgate agent stage https://example.org/vllm-0.6.sif vllm --sha256 3b1f…
  slurmgate agent stage --list
  slurmgate agent stage --remove models/llama-3.1-8b
`;

const StageConfig = AgentConfig.pick({ SLURMGATE_SHARED_ROOTS: true, SLURMGATE_CACHE_ROOT: true });

type Out = { stdout: { write(s: string): unknown }; stderr: { write(s: string): unknown } };

const human = (n: number) =>
  n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`;

/** Runs the stage command; every failure is one line on stderr and exit 1 (2 for usage). */
export async function stageMain(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  io: Out = process,
): Promise<number> {
  const fail = (message: string, code = 1) => {
    io.stderr.write(`slurmgate agent stage: ${message}\n`);
    return code;
  };
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        kind: { type: "string" },
        list: { type: "boolean" },
        remove: { type: "string" },
        sha256: { type: "string" },
        "max-bytes": { type: "string" },
        config: { type: "string", short: "c" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(STAGE_HELP);
    return 0;
  }
  try {
    const fromFile = values.config ? parseEnvFile(readFileSync(values.config, "utf8")) : {};
    const config = StageConfig.safeParse({ ...fromFile, ...env });
    if (!config.success) {
      const issue = config.error.issues[0]!;
      return fail(`invalid ${String(issue.path[0])}: ${issue.message}`);
    }
    const realRoots = await Promise.all(
      config.data.SLURMGATE_SHARED_ROOTS.map(async (root) => {
        const real = await realpath(root).catch(() => null);
        if (!real) {
          throw new StageError(`shared root ${root} does not exist`);
        }
        return real;
      }),
    );
    const cacheRoot = await checkCacheRoot(
      { realpath: (p) => realpath(p).catch(() => null) },
      realRoots,
      config.data.SLURMGATE_CACHE_ROOT,
    );
    if (cacheRoot === null) {
      return fail("SLURMGATE_CACHE_ROOT is not set: name a directory under one of SLURMGATE_SHARED_ROOTS");
    }
    if (values.list) {
      for (const entry of await listCaches(cacheRoot)) {
        io.stdout.write(`${entry.name}\t${human(entry.bytes)}\t${entry.stagedAt}\n`);
      }
      return 0;
    }
    if (values.remove !== undefined) {
      if (!(await removeCache(cacheRoot, values.remove))) {
        return fail(`${values.remove} is not staged`);
      }
      io.stdout.write(`removed ${values.remove}\n`);
      return 0;
    }
    if (positionals.length !== 2) {
      return fail("give SOURCE and NAME (or --list, or --remove REF); see --help", 2);
    }
    const kind = values.kind;
    if (kind !== undefined && !(CACHE_KINDS as readonly string[]).includes(kind)) {
      return fail(`--kind must be one of ${CACHE_KINDS.join(", ")}`, 2);
    }
    const maxBytes = values["max-bytes"];
    if (maxBytes !== undefined && !/^[1-9][0-9]{0,15}$/.test(maxBytes)) {
      return fail("--max-bytes must be a positive whole number of bytes", 2);
    }
    const entry = await stageCache({
      cacheRoot,
      source: positionals[0]!,
      name: positionals[1]!,
      kind: kind as CacheKind | undefined,
      sha256: values.sha256,
      maxBytes: maxBytes === undefined ? undefined : Number(maxBytes),
    });
    io.stdout.write(`staged ${entry.name} (${human(entry.bytes)})\n`);
    return 0;
  } catch (err) {
    return fail((err as Error).message);
  }
}
