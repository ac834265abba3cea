/**
 * Browsing a job directory with fixed commands run as the job's account, for executors that cannot
 * hold descriptors here (sudo: the service account may not open the user's 0700 directory; SSH: the
 * files are on the login node). Argv only, never shell text built from a path.
 *
 * GNU `find -P` walks down from the job directory's parent, matching one path and pruning the rest:
 * gnulib's fts (FTS_PHYSICAL) opens every directory it descends into with O_NOFOLLOW and checks it
 * is the one it lstat'ed, and never descends through a symlink, so a symlink anywhere below the
 * start, or one swapped in meanwhile, ends the walk instead of leading out. Reads run `dd
 * iflag=nofollow` through `-execdir`, in the directory find holds open, so no component is looked
 * up by name again. The start's own ancestors are the shared root as resolved at startup (an admin's
 * path, roots.real): the kernel resolves those.
 */
import { posix } from "node:path";
import { type BrowseAccess, type BrowseEntry, BrowseRefused, type Executor, type JobDirBrowser } from "./types.ts";

const TOOL_ENV = { PATH: "/usr/bin:/bin" };
const TIMEOUT_MS = 30_000;
const R = 4;
const X = 1;

type Component = { depth: number; type: string; uid: number; gid: number; mode: number; size: number };

/**
 * Whether `access` may do `need` (R, X) by the owner/group/other bits alone. Only the primary group
 * is known here, so a right held through a supplementary group is refused: safe side.
 */
export function mayAccess(st: { uid: number; gid: number; mode: number }, access: BrowseAccess, need: number): boolean {
  if (!access) {
    return true; // the command runs as the job's own account: the kernel has already decided
  }
  const bits = st.uid === access.uid ? st.mode >> 6 : st.gid === access.gid ? st.mode >> 3 : st.mode;
  return (bits & need) === need;
}

/** A literal path as a `find -path` pattern (`*`, `?`, `[` and `\` are pattern characters). */
const pattern = (path: string) => path.replace(/[*?[\]\\]/g, "\\$&");

const shownOf = (segments: readonly string[], depth: number) =>
  depth < 2 || segments.length === 0 ? "the job directory" : JSON.stringify(segments.slice(0, depth - 1).join("/"));

/** `type` as browse reports it, from find's %y. */
const typeOf = (y: string): BrowseEntry["type"] =>
  y === "f" ? "file" : y === "d" ? "dir" : y === "l" ? "symlink" : "other";

/**
 * The `find -P` walk from `dir`'s parent to `dir/segments…`: every component on the way (depth 0 is
 * the parent) printed as `C\tdepth\ttype\tuid\tgid\tmode\tsize\0`, everything else pruned unread.
 * `then` is the expression applied to the last component's children (listing) or, with `upTo`
 * "parent", to the last component itself (read).
 */
function walkArgs(
  dir: string,
  segments: readonly string[],
  then: string[],
  upTo: "parent" | "last",
  children = false,
): string[] {
  const start = posix.dirname(dir);
  const chain = [posix.basename(dir), ...segments];
  const all = [start, ...chain.map((_, i) => posix.join(start, ...chain.slice(0, i + 1)))];
  const prefixes = upTo === "last" ? all : all.slice(0, -1);
  // A listing reads one level below the last component; a read stops at it.
  const maxdepth = chain.length + (children ? 1 : 0);
  const any = prefixes.flatMap((p, i) => (i === 0 ? ["-path", pattern(p)] : ["-o", "-path", pattern(p)]));
  return [
    "-P",
    start,
    "-maxdepth",
    String(maxdepth),
    "-mindepth",
    "0",
    "(",
    ...any,
    ")",
    // A read's second walk only descends: its output is the file's bytes alone.
    ...(upTo === "last" ? ["-printf", "C\\t%d\\t%y\\t%U\\t%G\\t%m\\t%s\\0"] : []),
    "-o",
    ...then,
    "-o",
    "-prune",
  ];
}

/** The components find printed, checked in order: each a directory (the last as `last` needs), readable. */
function checkChain(
  stdout: string,
  stderr: string,
  segments: readonly string[],
  access: BrowseAccess,
  last: "dir" | "file",
): Component {
  const components = new Map<number, Component>();
  for (const record of stdout.split("\0")) {
    const [tag, depth, type, uid, gid, mode, size] = record.split("\t");
    if (tag === "C" && depth !== undefined && type && mode !== undefined) {
      components.set(Number(depth), {
        depth: Number(depth),
        type,
        uid: Number(uid),
        gid: Number(gid),
        mode: Number.parseInt(mode, 8),
        size: Number(size),
      });
    }
  }
  const n = segments.length + 1;
  for (let depth = 0; depth <= n; depth++) {
    const shown = shownOf(segments, depth);
    const c = components.get(depth);
    if (!c) {
      if (/Permission denied/.test(stderr)) {
        throw new BrowseRefused(`${shownOf(segments, depth - 1)} is not readable by the job's account`);
      }
      throw new BrowseRefused(`${shown} does not exist`);
    }
    if (c.type === "l") {
      throw new BrowseRefused(`${shown} is a symlink; symlinks are listed, never followed`);
    }
    if (depth === n && last === "file") {
      if (c.type !== "f") {
        throw new BrowseRefused(
          `${shown} is ${c.type === "d" ? "a directory: list it instead" : "not a regular file"}`,
        );
      }
      if (!mayAccess(c, access, R)) {
        throw new BrowseRefused(`${shown} is not readable by the job's account`);
      }
      return c;
    }
    if (c.type !== "d") {
      throw new BrowseRefused(`${shown} is not a directory`);
    }
    if (depth >= 1 && !mayAccess(c, access, depth === n ? R | X : X)) {
      throw new BrowseRefused(`${shown} is not readable by the job's account`);
    }
    if (depth === n) {
      return c;
    }
  }
  throw new BrowseRefused("the job directory does not exist");
}

/**
 * The paths below become find patterns joined with posix.join, which would resolve a `..`: the
 * caller's rule is checked again here so no segment can lead out of the job directory.
 */
function confined(dir: string, segments: readonly string[]): void {
  if (!posix.isAbsolute(dir) || posix.normalize(dir) !== dir || dir === "/") {
    throw new BrowseRefused("the job directory is not a normalized absolute path");
  }
  for (const s of segments) {
    if (s === "" || s === "." || s === ".." || s.includes("/") || s.includes("\0")) {
      throw new BrowseRefused(`${JSON.stringify(s.slice(0, 100))} is not a component inside the job directory`);
    }
  }
}

/**
 * A {@link JobDirBrowser} that runs `find` (by `findPath`; sudoers matches commands by absolute
 * path) through `run`, as the account `run` acts as.
 */
export function findBrowser(run: Executor["run"], findPath = "find"): JobDirBrowser {
  const find = (args: string[], binary = false) =>
    run(findPath, args, { env: TOOL_ENV, timeoutMs: TIMEOUT_MS, ...(binary ? { binary: true } : {}) });
  return {
    async list(dir, segments, access, max) {
      confined(dir, segments);
      const target = posix.join(dir, ...segments);
      const result = await find(
        walkArgs(
          dir,
          segments,
          ["-path", `${pattern(target)}/*`, "-printf", "E\\t%y\\t%s\\t%T@\\t%f\\0"],
          "last",
          true,
        ),
      );
      if (result.timedOut) {
        throw new BrowseRefused("the listing took too long");
      }
      checkChain(result.stdout, result.stderr, segments, access, "dir");
      const entries: BrowseEntry[] = [];
      for (const record of result.stdout.split("\0")) {
        if (!record.startsWith("E\t")) {
          continue;
        }
        const [, type, size, mtime, ...name] = record.split("\t");
        entries.push({
          name: name.join("\t"),
          type: typeOf(type ?? ""),
          size: Number(size),
          mtimeMs: Math.round(Number(mtime) * 1000),
        });
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return { entries: entries.slice(0, max), truncated: entries.length > max };
    },

    async read(dir, segments, access, range) {
      if (segments.length === 0) {
        throw new BrowseRefused("the job directory is a directory, not a file: list it instead");
      }
      confined(dir, segments);
      const n = segments.length + 1;
      const target = posix.join(dir, ...segments);
      const shown = shownOf(segments, n);
      const looked = await find(walkArgs(dir, segments, ["-false"], "last"));
      if (looked.timedOut) {
        throw new BrowseRefused(`${shown} took too long to look at`);
      }
      const { size } = checkChain(looked.stdout, looked.stderr, segments, access, "file");
      const length = Math.min(range.bytes, size);
      const offset = range.from === "head" ? 0 : size - length;
      if (length === 0) {
        return { size, offset, data: Buffer.alloc(0) };
      }
      // `-type f` is find's lstat; dd's nofollow refuses a symlink swapped in after it, nonblock a
      // FIFO. dd opens `./name` in the directory find holds, so no parent is looked up by name again.
      const dd = [
        "dd",
        "if={}",
        "iflag=nofollow,nonblock,skip_bytes,count_bytes",
        "bs=65536",
        `skip=${offset}`,
        `count=${length}`,
        "status=none",
        ";",
      ];
      const result = await find(
        walkArgs(dir, segments, ["-path", pattern(target), "-type", "f", "-execdir", ...dd], "parent"),
        true,
      );
      const data = result.stdoutBytes;
      if (!data) {
        throw new Error("this executor cannot return binary output");
      }
      if (data.length === 0) {
        throw new BrowseRefused(
          /Too many levels of symbolic links/.test(result.stderr)
            ? `${shown} is a symlink; symlinks are listed, never followed`
            : /Permission denied/.test(result.stderr)
              ? `${shown} is not readable by the job's account`
              : `${shown} changed while it was read`,
        );
      }
      return { size, offset, data };
    },
  };
}
