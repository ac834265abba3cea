/**
 * node:util parseArgs with the CLI's conventions: strict, `--help` on every verb, usage errors
 * that name the verb, and `--` before a job's command.
 */
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { CliError, UsageError } from "./errors.ts";

export type Parsed<T extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>
>;

/** Options every verb understands. */
export const COMMON = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
} as const satisfies ParseArgsOptionsConfig;

/**
 * An option that takes a value takes the next argument whatever it looks like, as getopt does:
 * `--sbatch-arg --constraint=ib` is the value `--constraint=ib`, not a second option (parseArgs
 * calls that ambiguous). Rewritten to `--sbatch-arg=--constraint=ib`, up to a `--`; a bare `--`
 * is never taken as a value.
 */
function attachDashValues(argv: string[], options: ParseArgsOptionsConfig): string[] {
  const takesValue = new Map<string, string>();
  for (const [name, option] of Object.entries(options)) {
    if (option.type === "string") {
      takesValue.set(`--${name}`, name);
      if (option.short) {
        takesValue.set(`-${option.short}`, name);
      }
    }
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const name = takesValue.get(arg);
    const next = argv[i + 1];
    if (name !== undefined && next?.startsWith("-") && next !== "--") {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Parses `argv` for `verb`; unknown options and missing values become UsageErrors. */
export function parse<T extends ParseArgsOptionsConfig>(verb: string, argv: string[], options: T) {
  const all = { ...COMMON, ...options };
  try {
    return parseArgs({ args: attachDashValues(argv, all), options: all, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new UsageError(message, verb);
  }
}

/** Exactly `n` positionals named by `names`, or a UsageError. */
export function positionals(verb: string, values: string[], names: string[]): string[] {
  if (values.length < names.length) {
    throw new UsageError(`missing ${names.slice(values.length).join(" ")}`, verb);
  }
  if (values.length > names.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(values[names.length])}`, verb);
  }
  return values;
}

/** Splits repeated `K=V` options into a record. */
export function pairs(verb: string, flag: string, values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values ?? []) {
    const at = item.indexOf("=");
    if (at <= 0) {
      throw new UsageError(`${flag} wants KEY=VALUE, got ${JSON.stringify(item)}`, verb);
    }
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

/** A positive integer option. */
export function integer(verb: string, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`${flag} wants a whole number, got ${JSON.stringify(value)}`, verb);
  }
  return Number(value);
}

/** `90s`, `10m`, `1h30m`, `2d` or plain seconds → milliseconds. */
export function duration(verb: string, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(value);
  if (!match || value === "") {
    throw new UsageError(`${flag} wants a duration like 90s, 10m or 1h30m, got ${JSON.stringify(value)}`, verb);
  }
  const [, d = "0", h = "0", m = "0", s = "0"] = match;
  return (((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60 + Number(s)) * 1000;
}

/**
 * The gateway's URL: http:// or https://, with a host. `gw.example.org:8080` (no scheme) would
 * otherwise parse as the scheme `gw.example.org:` and fail later with no hint.
 *
 * @example gatewayUrl("--url", "gw.example.org:8080") // throws: … did you mean https://gw.example.org:8080?
 */
export function gatewayUrl(source: string, value: string, verb?: string): string {
  const fail = (why: string) => {
    const message = `${source} ${why}, got ${JSON.stringify(value)}`;
    return verb ? new UsageError(message, verb) : new CliError(message);
  };
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw fail(`needs a scheme; did you mean https://${value.replace(/^\/+/, "")}?`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail("is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw fail(`must start with https:// (or http:// on a trusted network), not ${url.protocol}//`);
  }
  return value.replace(/\/+$/, "");
}
