/**
 * One interface that hides WHERE Slurm commands and job-directory file operations run.
 *
 * `local.ts` runs them on this machine; an SSH implementation (later) runs them on a login node.
 * Keep it minimal: every file operation the agent needs is explicit here, so a remote
 * implementation never has to guess, and nothing else in the agent touches `node:fs` or spawns.
 */

/** Result of one command. `code` is null when the process died from a signal or timed out. */
export interface ExecResult {
  code: number | null;
  stdout: string;
  /** stdout's bytes as they came, when asked for with `binary`. */
  stdoutBytes?: Buffer;
  stderr: string;
  /** True when the command was killed because it exceeded `timeoutMs`. */
  timedOut: boolean;
  /** Present (true) when the command was stopped because its stderr matched `stopOn`. */
  stopped?: true;
}

/** Options for {@link Executor.run}. */
export interface RunOptions {
  /** Bytes written to the command's stdin, then stdin is closed. */
  input?: string | Uint8Array;
  /**
   * The COMPLETE environment of the command (not merged with the agent's own): Slurm commands
   * read SBATCH_* / SLURM_* variables, so callers pass a scrubbed environment on purpose.
   */
  env?: Record<string, string>;
  /** Kill the command after this many milliseconds (SIGTERM, then SIGKILL). */
  timeoutMs?: number;
  cwd?: string;
  /** Also return stdout's raw bytes in `stdoutBytes` (for reading binary files through a command). */
  binary?: boolean;
  /**
   * Stop the command (TERM, then KILL) as soon as its stderr so far matches: for a command that
   * would otherwise sleep and retry on its own (sbatch on a full controller). The result says `stopped`.
   */
  stopOn?: RegExp;
}

/** What {@link Executor.stat} reports; null from stat means "does not exist". */
export interface FileStat {
  isFile: boolean;
  isDirectory: boolean;
  isSymbolicLink: boolean;
  size: number;
  mode: number;
  mtimeMs: number;
}

/** One entry of a job directory, as lstat sees it. */
export interface BrowseEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  mtimeMs: number;
}

/** Whose read rights a browse must not exceed; null: the executor's own account is the job's. */
export type BrowseAccess = { uid: number; gid: number } | null;

/**
 * Reading inside a job directory without ever following a symlink: `dir` (absolute, no symlink in
 * it) is opened component by component with O_NOFOLLOW, then each of `segments` the same way, so a
 * symlink anywhere (or one swapped in meanwhile) fails instead of leading out. Throws
 * {@link BrowseRefused} when the path is missing, a symlink, the wrong type, or not readable by `access`.
 */
export interface JobDirBrowser {
  list(
    dir: string,
    segments: readonly string[],
    access: BrowseAccess,
    max: number,
  ): Promise<{ entries: BrowseEntry[]; truncated: boolean }>;
  read(
    dir: string,
    segments: readonly string[],
    access: BrowseAccess,
    range: { from: "head" | "tail"; bytes: number },
  ): Promise<{ size: number; offset: number; data: Buffer }>;
}

/** A browse the path does not allow: the message says which component and why. */
export class BrowseRefused extends Error {
  override readonly name = "BrowseRefused";
}

/** Runs commands (argv arrays, never a shell string) and file operations somewhere. */
export interface Executor {
  /** Runs `cmd` with `args`; never throws for a non-zero exit, only for failure to start. */
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<ExecResult>;
  /** Writes a whole file atomically enough for our use (temp file + rename), with `mode` (default 0o600). */
  writeFile(path: string, data: string | Uint8Array, mode?: number): Promise<void>;
  /**
   * Creates each of `files` in the directory `dir`, new, with its mode. For a directory the agent
   * has just created, private (0700) and empty, where nothing can be planted: each file is created
   * directly (O_CREAT|O_EXCL|O_NOFOLLOW) instead of through a temp file and a rename. A name that
   * exists after all (a symlink, a file) is never written through: it is replaced as
   * {@link writeFile} replaces it. Optional: without it, the caller uses writeFile for each file.
   */
  writeNewFiles?(
    dir: string,
    files: readonly { name: string; data: string | Uint8Array; mode: number }[],
  ): Promise<void>;
  /**
   * Writes a file from a stream, never holding it whole: the chunks go to a new temp file beside
   * `path` (created exclusively, never through a symlink) as `body` yields them, and the temp is
   * renamed over `path` with `mode` only once `body` has ended. When `body` throws (a dropped
   * download, a hash that does not match) the temp is removed, nothing is left at `path`, and the
   * same error is thrown.
   */
  writeFileStream(path: string, body: AsyncIterable<Uint8Array>, mode?: number): Promise<void>;
  /**
   * Reads up to `length` bytes from `offset`; null when the file does not exist or is a symlink: a
   * job could plant one in its own directory to have the agent ship a file from outside the roots.
   */
  readFile(path: string, range?: { offset?: number; length?: number }): Promise<Buffer | null>;
  /** lstat semantics (symlinks are not followed); null when the path does not exist. */
  stat(path: string): Promise<FileStat | null>;
  /** mkdir -p with `mode` for the directories it creates. Follows symlinks: never for job paths. */
  mkdir(path: string, mode?: number): Promise<void>;
  /**
   * Creates the last component of the absolute `path` only (never a parent), with `mode`. No
   * component of `path` may be a symlink: it fails with code ELOOP rather than create anything
   * through one. Resolves true when it created the directory, false when something already exists
   * there (possibly a symlink: check with stat).
   */
  mkdirNoFollow(path: string, mode?: number): Promise<boolean>;
  /** Resolves symlinks; null when the path does not exist. */
  realpath(path: string): Promise<string | null>;
  /** rm -f (files) or rm -rf (directories when `recursive`); missing paths are not an error. */
  rm(path: string, opts?: { recursive?: boolean }): Promise<void>;
  /** Present where a browse can be done without racing a symlink swap (local, SSH, sudo as a user). */
  browse?: JobDirBrowser;
}
