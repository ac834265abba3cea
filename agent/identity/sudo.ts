/**
 * A site agent run as an unprivileged service account: every action for a user runs as that user,
 * through `sudo -n -u <account> -- <tool>`, never as the service account itself. Job directories
 * then belong to their users from birth, and a symlink a user plants in their own directory can
 * only steer writes made with that user's own rights.
 *
 * The tools are the ones below and nothing else; the sudoers rule that allows them is built from
 * the same list ({@link sudoersLine}), so the refusal sentence, the docs and the tests agree.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { findBrowser } from "../executor/browse-find.ts";
import type { ExecResult, Executor, FileStat, RunOptions } from "../executor/types.ts";
import { IdentityRefusal } from "./guard.ts";

/**
 * Coreutils (and find) the agent runs as a user, by absolute path: sudoers matches commands by path.
 * `find` walks a job directory without following symlinks, for browsing and for outputs; its
 * `-exec` lets the service account run any command as the user, which sbatch as the user (a script
 * of the agent's choosing) already does, so it grants nothing new.
 */
export const SUDO_FILE_TOOLS = ["mkdir", "tee", "dd", "stat", "realpath", "rm", "mv", "chmod", "find"] as const;
/** Slurm commands the agent runs as a user; tracking (squeue, sacct) needs no sudo. */
export const SUDO_SLURM_TOOLS = ["sbatch", "scancel"] as const;
/** The Runas list the docs propose: a group holding the accounts the site maps. */
export const SUDO_RUNAS_GROUP = "slurmgate-users";

type FileTool = (typeof SUDO_FILE_TOOLS)[number];

const FILE_TOOL_DIR = "/usr/bin";
/** Bytes of a streamed write handed to one `dd` as the user: the most a streamed write holds. */
const STREAM_BATCH_BYTES = 4 * 1024 * 1024;
/** `find` as sudoers names it: outputs list a job directory with it as the job's account. */
export const SUDO_FIND = `${FILE_TOOL_DIR}/find`;
const TOOL_ENV = { PATH: "/usr/bin:/bin" };

/**
 * The sudoers lines a site adds for a service account: who may act as whom, with which tools.
 * `env_keep` passes SLURM_CONF through sudo's env_reset; `umask=0077` makes every file the agent
 * writes for a user 0600.
 * @example
 * sudoersLines("slurmgate")
 * // => ['Defaults:slurmgate env_keep += "SLURM_CONF", umask=0077',
 * //     "slurmgate ALL=(%slurmgate-users) NOPASSWD: /usr/bin/sbatch, /usr/bin/scancel, /usr/bin/mkdir, …"]
 */
export function sudoersLines(account: string, options: { slurmBin?: string; runas?: string } = {}): string[] {
  const slurmBin = (options.slurmBin || "/usr/bin").replace(/\/$/, "");
  const tools = [
    ...SUDO_SLURM_TOOLS.map((t) => `${slurmBin}/${t}`),
    ...SUDO_FILE_TOOLS.map((t) => `${FILE_TOOL_DIR}/${t}`),
  ];
  return [
    `Defaults:${account} env_keep += "SLURM_CONF", umask=0077`,
    `${account} ALL=(${options.runas ?? `%${SUDO_RUNAS_GROUP}`}) NOPASSWD: ${tools.join(", ")}`,
  ];
}

/**
 * sudo's own refusals (with -n it never prompts): no rule for this command or Runas user, or no
 * such user. A tool's own errors start with the tool's name, never with `sudo:`.
 */
const REFUSED = /^sudo: (a password is required|a terminal is required|unknown user|.*not allowed)|^Sorry, user /im;

export function isSudoRefusal(result: ExecResult): boolean {
  return result.code !== 0 && REFUSED.test(result.stderr);
}

function refusal(tool: string, user: string, account: string, slurmBin?: string): IdentityRefusal {
  const line = sudoersLines(account, { slurmBin })[1];
  return new IdentityRefusal(
    "sudo_refused",
    `sudo refused to run ${tool} as ${user}: add ${user} to the Runas list of the agent's sudoers rule (${line})`,
  );
}

export type SudoOptions = {
  /** The service account's name, for the sudoers line a refusal names. */
  account: string;
  /** SLURMGATE_SLURM_BIN, for the sudoers line. */
  slurmBin?: string;
};

/**
 * An Executor whose every command and file operation runs as `user` through `sudo -n`. `run`
 * prefixes the command (its environment goes through sudo's env_reset); file operations use the
 * coreutils in {@link SUDO_FILE_TOOLS}. A sudo refusal throws IdentityRefusal (`sudo_refused`)
 * before the tool ever runs, so nothing was done.
 */
export function sudoExecutor(base: Executor, user: string, options: SudoOptions): Executor {
  const sudo = async (cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> => {
    const env = { ...TOOL_ENV, ...opts.env };
    const result = await base.run("sudo", ["-n", "-u", user, "--", cmd, ...args], { ...opts, env });
    if (isSudoRefusal(result)) {
      throw refusal(posix.basename(cmd), user, options.account, options.slurmBin);
    }
    return result;
  };
  const tool = (name: FileTool, args: readonly string[], input?: string | Uint8Array) =>
    sudo(`${FILE_TOOL_DIR}/${name}`, args, { env: TOOL_ENV, input, binary: name === "dd" });
  const fail = (name: string, path: string, result: ExecResult) =>
    Object.assign(new Error(`${name} ${path} as ${user}: ${result.stderr.trim() || `exit ${result.code}`}`), {
      code: /File exists/.test(result.stderr) ? "EEXIST" : /Too many levels/.test(result.stderr) ? "ELOOP" : "EIO",
    });

  return {
    run: sudo,
    // As the user: the kernel keeps reads within their rights, and find never follows a symlink.
    browse: findBrowser(sudo, SUDO_FIND),
    async writeFile(path, data) {
      // The mode comes from sudo's umask (0077 in the documented rule): 0600, in a 0700 directory.
      const result = await tool("tee", ["--", path], data);
      if (result.code !== 0) {
        throw fail("tee", path, result);
      }
    },
    async writeFileStream(path, body, mode = 0o600) {
      const dir = posix.dirname(path);
      const tmp = `${dir}/.${posix.basename(path)}.${randomBytes(6).toString("hex")}.tmp`;
      let created = false;
      // The first dd creates the temp (O_EXCL, never through a symlink); each later one appends a
      // batch, so no more than one batch is held however large the file.
      const put = async (batch: Uint8Array) => {
        const flags = created ? ["oflag=nofollow,append", "conv=notrunc"] : ["oflag=nofollow", "conv=excl"];
        const result = await tool("dd", [`of=${tmp}`, ...flags, "bs=65536", "status=none"], batch);
        created = true;
        if (result.code !== 0) {
          throw fail("dd", tmp, result);
        }
      };
      try {
        let pending: Uint8Array[] = [];
        let size = 0;
        for await (const chunk of body) {
          pending.push(chunk);
          size += chunk.byteLength;
          if (size >= STREAM_BATCH_BYTES) {
            await put(Buffer.concat(pending));
            pending = [];
            size = 0;
          }
        }
        if (size > 0 || !created) {
          await put(Buffer.concat(pending));
        }
        // sudo's umask made the temp 0600: the input's own mode (an executable script) needs chmod.
        const chmod = await tool("chmod", [mode.toString(8), "--", tmp]);
        if (chmod.code !== 0) {
          throw fail("chmod", tmp, chmod);
        }
        // -T: a directory at `path` is an error, never a place to move the temp into.
        const mv = await tool("mv", ["-f", "-T", "--", tmp, path]);
        if (mv.code !== 0) {
          throw fail("mv", path, mv);
        }
      } catch (err) {
        if (created) {
          await tool("rm", ["-f", "--", tmp]).catch(() => {});
        }
        throw err;
      }
    },
    async readFile(path, range = {}) {
      // O_NOFOLLOW: a symlink in the last component is refused, as the local executor does.
      const args = [`if=${path}`, "iflag=nofollow,skip_bytes,count_bytes", "bs=65536", "status=none"];
      if (range.offset) {
        args.push(`skip=${range.offset}`);
      }
      if (range.length !== undefined) {
        args.push(`count=${range.length}`);
      }
      const result = await tool("dd", args);
      if (result.code !== 0) {
        return null; // missing, a symlink, a directory: "not there", as for the local executor
      }
      if (!result.stdoutBytes) {
        throw new Error(`dd ${path} as ${user}: this executor cannot return binary output`);
      }
      return result.stdoutBytes;
    },
    async stat(path) {
      const result = await tool("stat", ["-c", "%F|%s|%a|%Y", "--", path]);
      return result.code === 0 ? parseStat(result.stdout) : null;
    },
    async mkdir(path, mode = 0o700) {
      const result = await tool("mkdir", ["-p", "-m", mode.toString(8), "--", path]);
      if (result.code !== 0) {
        throw fail("mkdir", path, result);
      }
    },
    async mkdirNoFollow(path, mode = 0o700) {
      // mkdir never creates through a symlink in the last component (EEXIST); a symlink on the way
      // was placed by this user in their own directory and can only steer this user's own write.
      const result = await tool("mkdir", ["-m", mode.toString(8), "--", path]);
      if (result.code === 0) {
        return true;
      }
      if (/File exists/.test(result.stderr)) {
        return false;
      }
      throw fail("mkdir", path, result);
    },
    async realpath(path) {
      const result = await tool("realpath", ["-e", "--", path]);
      return result.code === 0 ? result.stdout.replace(/\n$/, "") : null;
    },
    async rm(path, opts = {}) {
      const result = await tool("rm", [opts.recursive ? "-rf" : "-f", "--", path]);
      if (result.code !== 0) {
        throw fail("rm", path, result);
      }
    },
  };
}

/** One `stat -c '%F|%s|%a|%Y'` line (lstat: symlinks are not followed). */
export function parseStat(line: string): FileStat | null {
  const [type, size, mode, mtime] = line.trim().split("|");
  if (type === undefined || size === undefined || mode === undefined || mtime === undefined) {
    return null;
  }
  return {
    isFile: type === "regular file" || type === "regular empty file",
    isDirectory: type === "directory",
    isSymbolicLink: type === "symbolic link",
    size: Number(size),
    mode: Number.parseInt(mode, 8),
    mtimeMs: Number(mtime) * 1000,
  };
}

/**
 * What a sudo-mode agent reads back (logs, results, exit files) lives in its users' 0700
 * directories: a read or stat of `<first root>/<owner>/…` runs as the account `owner` maps to.
 * Anything else is read by the service account itself, never following a symlink.
 */
export function sudoReads(base: Executor, root: string, accountOf: (owner: string) => Executor | null): Executor {
  const route = (path: string): Executor | null | undefined => {
    const rel = posix.relative(root, posix.normalize(path));
    if (rel === "" || rel.startsWith("..") || posix.isAbsolute(rel)) {
      return undefined;
    }
    return accountOf(rel.split("/")[0]!);
  };
  // A user sudo no longer acts as (taken out of the Runas list): their files read as absent, so
  // tracking goes on from squeue and sacct alone instead of failing every cycle.
  const absentIfRefused = (err: unknown) => {
    if (err instanceof IdentityRefusal) {
      return null;
    }
    throw err;
  };
  return {
    ...base,
    // The service account's own browser would read as itself: browsing goes through sudo.as(owner).
    browse: undefined,
    async readFile(path, range) {
      const as = route(path);
      return as === undefined
        ? base.readFile(path, range)
        : as
          ? as.readFile(path, range).catch(absentIfRefused)
          : null;
    },
    async stat(path) {
      const as = route(path);
      return as === undefined ? base.stat(path) : as ? as.stat(path).catch(absentIfRefused) : null;
    },
  };
}
