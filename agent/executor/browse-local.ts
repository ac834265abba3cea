/**
 * Browsing a job directory on this machine (Executor.browse): every component is opened relative to
 * its parent's descriptor with O_NOFOLLOW, through /proc/self/fd as mkdirNoFollow does, so the walk
 * holds directories, not names, and a symlink the job planted (or swaps in meanwhile) is never
 * followed: it fails the walk, or is listed as a symlink.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { mayAccess } from "./browse-find.ts";
import { type BrowseAccess, type BrowseEntry, BrowseRefused, type JobDirBrowser } from "./types.ts";

const PROC_FD = "/proc/self/fd";
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** Names read from one directory before sorting; a listing past this is cut anyway. */
const MAX_SCANNED = 100_000;

const R = 4;
const X = 1;

/**
 * Why `access` matters: a site agent runs as root and reads for the job's account, so it must not
 * read what that account could not (a file hard-linked in, a 0000 file, a directory it locked
 * itself out of). The rule is browse-find's {@link mayAccess}, shared by both browsers.
 */
const may = (st: fs.Stats, access: BrowseAccess, need: number) => mayAccess(st, access, need);

function why(err: unknown, shown: string): BrowseRefused {
  const code = (err as { code?: string }).code;
  switch (code) {
    case "ELOOP":
      return new BrowseRefused(`${shown} is a symlink; symlinks are listed, never followed`);
    case "ENOENT":
      return new BrowseRefused(`${shown} does not exist`);
    case "ENOTDIR":
      return new BrowseRefused(`${shown} is not a directory`);
    case "EACCES":
    case "EPERM":
      return new BrowseRefused(`${shown} is not readable by the job's account`);
    default:
      return new BrowseRefused(`${shown} cannot be opened: ${(err as Error).message}`);
  }
}

const shownOf = (segments: readonly string[], upTo: number) =>
  segments.length === 0 || upTo < 0 ? "the job directory" : JSON.stringify(segments.slice(0, upTo + 1).join("/"));

/** Opens `dir` from `/` one component at a time, then each segment, every one O_NOFOLLOW; returns the last fd. */
function walk(dir: string, segments: readonly string[], access: BrowseAccess): number {
  if (!fs.existsSync(PROC_FD)) {
    throw new BrowseRefused(`${PROC_FD} is not available on this host`);
  }
  let fd = fs.openSync("/", O_RDONLY | O_DIRECTORY);
  try {
    for (const part of path.posix.resolve("/", dir).split("/").filter(Boolean)) {
      const next = openAt(fd, part, DIR_FLAGS, "the job directory");
      fs.closeSync(fd);
      fd = next;
    }
    if (!may(fs.fstatSync(fd), access, X)) {
      throw new BrowseRefused("the job directory is not readable by the job's account");
    }
    for (const [i, part] of segments.entries()) {
      const next = openAt(fd, part, DIR_FLAGS, shownOf(segments, i));
      fs.closeSync(fd);
      fd = next;
      if (!may(fs.fstatSync(fd), access, X)) {
        throw new BrowseRefused(`${shownOf(segments, i)} is not readable by the job's account`);
      }
    }
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function openAt(dirFd: number, name: string, flags: number, shown: string): number {
  try {
    return fs.openSync(`${PROC_FD}/${dirFd}/${name}`, flags);
  } catch (err) {
    // With O_DIRECTORY, Linux answers ENOTDIR for a symlink before O_NOFOLLOW's ELOOP: say which it is.
    const code = (err as { code?: string }).code;
    const link =
      code === "ENOTDIR" ? fs.lstatSync(`${PROC_FD}/${dirFd}/${name}`, { throwIfNoEntry: false }) : undefined;
    throw why(link?.isSymbolicLink() ? Object.assign(err as Error, { code: "ELOOP" }) : err, shown);
  }
}

function typeOf(st: fs.Stats): BrowseEntry["type"] {
  return st.isSymbolicLink() ? "symlink" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
}

export const localBrowser: JobDirBrowser = {
  async list(dir, segments, access, max) {
    const fd = walk(dir, segments, access);
    try {
      if (!may(fs.fstatSync(fd), access, R | X)) {
        throw new BrowseRefused(`${shownOf(segments, segments.length - 1)} is not readable by the job's account`);
      }
      const names: string[] = [];
      const handle = fs.opendirSync(`${PROC_FD}/${fd}`);
      try {
        for (let entry = handle.readSync(); entry && names.length < MAX_SCANNED; entry = handle.readSync()) {
          names.push(entry.name);
        }
      } finally {
        handle.closeSync();
      }
      names.sort();
      const entries: BrowseEntry[] = [];
      for (const name of names.slice(0, max)) {
        try {
          // lstat through the held descriptor: a name swapped for a symlink is reported as one.
          const st = fs.lstatSync(`${PROC_FD}/${fd}/${name}`);
          entries.push({ name, type: typeOf(st), size: st.size, mtimeMs: st.mtimeMs });
        } catch {
          // removed between readdir and lstat: it is not there any more
        }
      }
      return { entries, truncated: names.length > max };
    } finally {
      fs.closeSync(fd);
    }
  },

  async read(dir, segments, access, range) {
    const last = segments.at(-1);
    if (last === undefined) {
      throw new BrowseRefused("the job directory is a directory, not a file: list it instead");
    }
    const parent = walk(dir, segments.slice(0, -1), access);
    const shown = shownOf(segments, segments.length - 1);
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted in the directory must not hold the agent in open().
      fd = openAt(parent, last, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, shown);
    } finally {
      fs.closeSync(parent);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        throw new BrowseRefused(
          `${shown} is ${st.isDirectory() ? "a directory: list it instead" : "not a regular file"}`,
        );
      }
      if (!may(st, access, R)) {
        throw new BrowseRefused(`${shown} is not readable by the job's account`);
      }
      const length = Math.min(range.bytes, st.size);
      const offset = range.from === "head" ? 0 : st.size - length;
      const data = Buffer.alloc(length);
      const read = fs.readSync(fd, data, 0, length, offset);
      return { size: st.size, offset, data: data.subarray(0, read) };
    } finally {
      fs.closeSync(fd);
    }
  },
};
