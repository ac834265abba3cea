/**
 * Agent-side rules for environment names, on top of the schema's ENV_NAME / RESERVED_ENV.
 *
 * Requested variables (`spec.env`, `spec.container.env`) are delivered to the payload by
 * `/usr/bin/env NAME=value …` at launch, so any name the schema allows arrives byte-exact.
 * Before that, the wrapper also exports them into its own shell so `setup` lines can use them;
 * names bash gives a meaning of its own (RANDOM, SHELLOPTS, POSIXLY_CORRECT, …) and the
 * wrapper's own `sg_*` variables are skipped for that early export only.
 * Secrets are only ever exported by the shell (never placed on a command line), so their names
 * must avoid the bash-special set entirely.
 */
import { ENV_NAME, RESERVED_ENV } from "../../schemas/patterns.ts";
import { RenderError } from "./errors.ts";

/** Variables bash reads, sets or treats specially; exporting them would change the wrapper shell. */
export const BASH_SPECIAL_NAMES: readonly string[] = [
  "_",
  "BASH",
  "BASHOPTS",
  "BASHPID",
  "BASH_ALIASES",
  "BASH_ARGC",
  "BASH_ARGV",
  "BASH_ARGV0",
  "BASH_CMDS",
  "BASH_COMMAND",
  "BASH_COMPAT",
  "BASH_ENV",
  "BASH_EXECUTION_STRING",
  "BASH_LINENO",
  "BASH_LOADABLES_PATH",
  "BASH_MONOSECONDS",
  "BASH_REMATCH",
  "BASH_SOURCE",
  "BASH_SUBSHELL",
  "BASH_TRAPSIG",
  "BASH_VERSINFO",
  "BASH_VERSION",
  "BASH_XTRACEFD",
  "CDPATH",
  "CHILD_MAX",
  "COLUMNS",
  "COMPREPLY",
  "COMP_CWORD",
  "COMP_KEY",
  "COMP_LINE",
  "COMP_POINT",
  "COMP_TYPE",
  "COMP_WORDBREAKS",
  "COMP_WORDS",
  "DIRSTACK",
  "EMACS",
  "ENV",
  "EPOCHREALTIME",
  "EPOCHSECONDS",
  "EUID",
  "EXECIGNORE",
  "FCEDIT",
  "FIGNORE",
  "FUNCNAME",
  "FUNCNEST",
  "GLOBIGNORE",
  "GLOBSORT",
  "GROUPS",
  "HISTCMD",
  "HISTCONTROL",
  "HISTFILE",
  "HISTFILESIZE",
  "HISTIGNORE",
  "HISTSIZE",
  "HISTTIMEFORMAT",
  "HOME",
  "HOSTFILE",
  "HOSTNAME",
  "HOSTTYPE",
  "IFS",
  "IGNOREEOF",
  "INPUTRC",
  "INSIDE_EMACS",
  "LANG",
  "LINENO",
  "LINES",
  "MACHTYPE",
  "MAIL",
  "MAILCHECK",
  "MAILPATH",
  "MAPFILE",
  "OLDPWD",
  "OPTARG",
  "OPTERR",
  "OPTIND",
  "OSTYPE",
  "PATH",
  "PIPESTATUS",
  "POSIXLY_CORRECT",
  "PPID",
  "PROMPT_COMMAND",
  "PROMPT_DIRTRIM",
  "PS0",
  "PS1",
  "PS2",
  "PS3",
  "PS4",
  "PWD",
  "RANDOM",
  "READLINE_ARGUMENT",
  "READLINE_LINE",
  "READLINE_MARK",
  "READLINE_POINT",
  "REPLY",
  "SECONDS",
  "SHELL",
  "SHELLOPTS",
  "SHLVL",
  "SRANDOM",
  "TERM",
  "TIMEFORMAT",
  "TMOUT",
  "TMPDIR",
  "UID",
];

/** A bash `case` pattern matching every name the wrapper must not export into its own shell. */
export function noEarlyExportCasePattern(): string {
  // Every entry is a plain identifier, so it is safe inside a case pattern unquoted.
  return [...BASH_SPECIAL_NAMES, "LC_*", "sg_*"].join("|");
}

/** Names that would configure the container runtime itself rather than reach the payload. */
const RUNTIME_ENV = /^(APPTAINER|SINGULARITY)/;
/** Upper bound on all requested environment bytes (execve shares ARG_MAX with argv). */
export const MAX_ENV_BYTES = 256 * 1024;
/** Upper bound on all argv bytes. */
export const MAX_ARGV_BYTES = 1024 * 1024;

/** Checks one requested environment map (`spec.env` or `spec.container.env`). */
export function checkEnvMap(env: Readonly<Record<string, string>>, field: string): void {
  let bytes = 0;
  for (const [name, value] of Object.entries(env)) {
    checkName(name, `${field}.${name}`);
    if (/[\0\r\n]/.test(value)) {
      throw new RenderError("invalid_spec", `${field}.${name}: value contains NUL, CR or LF`, `${field}.${name}`);
    }
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 2;
  }
  if (bytes > MAX_ENV_BYTES) {
    throw new RenderError("invalid_spec", `${field}: more than ${MAX_ENV_BYTES} bytes of environment`, field);
  }
}

/** Checks the names of requested secrets (values are never seen by the renderer). */
export function checkSecretNames(names: readonly string[], env: Readonly<Record<string, string>>): void {
  for (const name of names) {
    checkName(name, `secrets.${name}`);
    if (BASH_SPECIAL_NAMES.includes(name) || name.startsWith("sg_")) {
      throw new RenderError("invalid_spec", `secrets.${name}: name is used by the shell`, `secrets.${name}`);
    }
    if (Object.hasOwn(env, name)) {
      throw new RenderError("invalid_spec", `secrets.${name}: also set in env`, `secrets.${name}`);
    }
  }
}

function checkName(name: string, field: string): void {
  if (!ENV_NAME.test(name)) {
    throw new RenderError("invalid_spec", `${field}: not a valid environment name`, field);
  }
  if (RESERVED_ENV.test(name) || RUNTIME_ENV.test(name)) {
    throw new RenderError("policy_rejected", `${field}: name is reserved`, field);
  }
}
