/**
 * Data files that carry user strings from the agent to the job wrapper without a shell parser.
 *
 * Format: items separated by and terminated with NUL. NUL is the one byte that cannot occur in
 * argv items, environment entries or file names, so no escaping exists to get wrong. The wrapper
 * reads them with `while IFS= read -r -d '' item`, which works back to bash 3.
 */

/** Names of the files the renderer asks the caller to write into the job directory. */
export const JOB_FILES = {
  /** The rendered batch script itself. */
  script: "job.sbatch",
  /** `spec.command`, NUL-delimited. */
  argv: "argv.nul",
  /** `spec.env` as `NAME=value` entries, NUL-delimited. */
  env: "env.nul",
  /** `spec.container.env` as `NAME=value` entries, NUL-delimited. */
  containerEnv: "container-env.nul",
  /** `spec.setup` lines, NUL-delimited; the wrapper runs them one by one before the payload. */
  setup: "setup.nul",
  /** `spec.script`, run with bash. */
  payload: "payload.sh",
  /** `spec.services` (render/services.ts); the wrapper starts them before the payload. */
  services: "services.nul",
} as const;

/**
 * Encodes a list of strings as NUL-terminated items.
 * @example
 * encodeNulList(["a b", "c"]).toString() // => "a b\0c\0"
 */
export function encodeNulList(items: readonly string[]): Buffer {
  for (const item of items) {
    if (item.includes("\0")) {
      throw new Error("an item contains NUL");
    }
  }
  return Buffer.from(items.map((item) => `${item}\0`).join(""), "utf8");
}

/** Decodes {@link encodeNulList} output (tolerates a missing final terminator). */
export function decodeNulList(data: Uint8Array): string[] {
  const text = Buffer.from(data).toString("utf8");
  if (text === "") {
    return [];
  }
  const items = text.split("\0");
  if (items.at(-1) === "") {
    items.pop();
  }
  return items;
}

/**
 * Encodes an environment as NUL-terminated `NAME=value` entries, in a stable (sorted) order.
 * The same format is used for the secrets file the agent writes for a job.
 * @example
 * encodeEnvEntries({ B: "2", A: "x=y" }).toString() // => "A=x=y\0B=2\0"
 */
export function encodeEnvEntries(env: Readonly<Record<string, string>>): Buffer {
  return encodeNulList(envEntries(env));
}

/** `NAME=value` strings of an environment record, sorted by name. */
export function envEntries(env: Readonly<Record<string, string>>): string[] {
  return Object.keys(env)
    .sort()
    .map((name) => `${name}=${env[name] ?? ""}`);
}
