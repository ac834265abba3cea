/**
 * Staging for offline clusters: copies a model directory or a `.sif` image from the login node
 * (which may reach the internet) into the agent's cache root on shared storage, where compute
 * nodes without internet read it. Layout: `<cacheRoot>/models/<name>/` (with its manifest inside, as
 * `.slurmgate-manifest.json`) and `<cacheRoot>/images/<name>.sif` (manifest beside it, `.<name>.sif.json`).
 *
 * Atomic: everything is copied into a dot-named temp entry beside the final one, verified against
 * the sha256 and size read from SOURCE, then renamed into place; listings skip dot names, so a copy
 * killed half-way is never seen, and a later stage removes its leftovers. Symlinks in SOURCE are
 * copied as files only when they point to a file inside SOURCE; any other symlink refuses the stage.
 */
import { createHash, randomBytes } from "node:crypto";
import { constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rename, rm, writeFile } from "node:fs/promises";
import { join, posix, relative, sep } from "node:path";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { fileURLToPath } from "node:url";
import {
  CACHE_KIND_DIR,
  CACHE_NAME,
  CACHE_REF,
  type CacheEntry,
  type CacheKind,
  MAX_INVENTORY_CACHES,
  cacheRefKind,
} from "../schemas/cache.ts";
import { isInsideRoots } from "../schemas/roots.ts";
import type { Executor } from "./executor/types.ts";

export class StageError extends Error {
  override name = "StageError";
}

const MODEL_MANIFEST = ".slurmgate-manifest.json";
const imageManifest = (name: string) => `.${posix.basename(name)}.sif.json`;

type Manifest = {
  ref: string;
  bytes: number;
  stagedAt: string;
  files: { path: string; bytes: number; sha256: string }[];
};

/**
 * The cache root, realpath-resolved, or null when none is configured. One outside the shared roots
 * (also through a symlink) is a config error at start, like a missing shared root.
 */
export async function checkCacheRoot(
  executor: Pick<Executor, "realpath">,
  realRoots: readonly string[],
  cacheRoot: string | undefined,
): Promise<string | null> {
  if (cacheRoot === undefined) {
    return null;
  }
  const real = await executor.realpath(cacheRoot);
  if (!real) {
    throw new Error(`SLURMGATE_CACHE_ROOT ${cacheRoot} does not exist`);
  }
  if (!isInsideRoots(real, realRoots)) {
    throw new Error(
      `SLURMGATE_CACHE_ROOT ${cacheRoot} resolves to ${real}, outside the shared roots (${realRoots.join(", ")})`,
    );
  }
  return real;
}

/** The path of a staged reference (`models/x`, `images/y`) under a cache root; never checks the disk. */
export function cachePath(cacheRoot: string, ref: string): string {
  if (!CACHE_REF.test(ref)) {
    throw new StageError(`${JSON.stringify(ref)} is not a cache reference such as models/llama-3.1-8b`);
  }
  return cacheRefKind(ref) === "image" ? `${posix.join(cacheRoot, ref)}.sif` : posix.join(cacheRoot, ref);
}

/** The reference a job uses for a staged name of a kind: `model` + `llama` → `models/llama`. */
export function cacheRef(kind: CacheKind, name: string): string {
  if (!CACHE_NAME.test(name)) {
    throw new StageError(
      `${JSON.stringify(name)} is not a cache name: lowercase letters, digits, '.', '_' and '-', at most one '/', each part starting with a letter or digit`,
    );
  }
  return `${CACHE_KIND_DIR[kind]}/${name}`;
}

/** Creates `dir` and the parents below `base` one level at a time, refusing any symlink on the way. */
async function mkdirsNoFollow(base: string, segments: string[]): Promise<string> {
  let current = base;
  for (const segment of segments) {
    current = join(current, segment);
    await mkdir(current, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") {
        throw err;
      }
    });
    const st = await lstat(current);
    if (!st.isDirectory()) {
      throw new StageError(`${current} is not a plain directory (a symlink or a file); refusing to write through it`);
    }
  }
  return current;
}

function sourcePath(source: string): string {
  if (source.startsWith("file://")) {
    return fileURLToPath(source);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new StageError(
      `${shownUrl(source)}: only local paths, file:// and https:// URLs can be staged (never plain http://)`,
    );
  }
  return source;
}

/** Most bytes one https:// download may have unless the stage says otherwise. */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 ** 3;
/** Redirects followed per download (each must stay on https://). */
const MAX_REDIRECTS = 5;
/** A download that sends nothing for this long is given up. */
const DOWNLOAD_IDLE_MS = 60_000;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A URL as it may be shown: no credentials, query or fragment (a presigned URL's query is a secret). */
function shownUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "the source";
  }
}

/** An https:// SOURCE and the sha256 it must have (`--sha256`, or the URL's `#sha256=<hex>`). */
function httpsSource(source: string, sha256?: string): { url: URL; sha256?: string } {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new StageError(`${shownUrl(source)} is not a URL`);
  }
  const fromHash = /^#sha256=(.*)$/i.exec(url.hash)?.[1];
  url.hash = "";
  const wanted = [sha256, fromHash].filter((h): h is string => h !== undefined).map((h) => h.toLowerCase());
  for (const h of wanted) {
    if (!SHA256_HEX.test(h)) {
      throw new StageError(`sha256 ${JSON.stringify(h)} is not 64 hex digits`);
    }
  }
  if (wanted.length === 2 && wanted[0] !== wanted[1]) {
    throw new StageError("--sha256 and the URL's #sha256= differ; give one");
  }
  return { url, sha256: wanted[0] };
}

/** The file name a downloaded model file gets: the URL's last path segment, as a plain name. */
function downloadName(url: URL): string {
  const last = decodeURIComponent(url.pathname.split("/").at(-1) ?? "");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(last)) {
    throw new StageError(
      `${shownUrl(url)}: the URL's last path segment is not a plain file name to stage the model file as`,
    );
  }
  return last;
}

/** `new URL` that answers null for a malformed one (URL.parse needs Node 22; the agent runs on 20). */
function parseUrl(text: string, base: URL): URL | null {
  try {
    return new URL(text, base);
  } catch {
    return null;
  }
}

function httpsGet(url: URL): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: "GET", headers: { "user-agent": "slurmgate-stage" } }, resolve);
    req.setTimeout(DOWNLOAD_IDLE_MS, () =>
      req.destroy(new StageError(`${shownUrl(url)}: no data for ${DOWNLOAD_IDLE_MS / 1000} s`)),
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Downloads `url` into the new file `to` (O_EXCL), following at most {@link MAX_REDIRECTS} https://
 * redirects, within `maxBytes`, and checks the sha256 when one is given. Throws on a body that
 * broke off or came short of its Content-Length; the caller removes `to`.
 */
async function download(url: URL, to: string, limits: { maxBytes: number; sha256?: string }) {
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await httpsGet(current).catch((err: Error) => {
      throw err instanceof StageError ? err : new StageError(`${shownUrl(current)}: ${err.message}`);
    });
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status)) {
      res.resume();
      const location = res.headers.location;
      const next = location === undefined ? null : parseUrl(location, current);
      if (!next) {
        throw new StageError(`${shownUrl(current)} redirects (${status}) without a usable Location`);
      }
      if (next.protocol !== "https:") {
        throw new StageError(`${shownUrl(current)} redirects to ${shownUrl(next)}: only https:// is followed`);
      }
      if (hop >= MAX_REDIRECTS) {
        throw new StageError(`${shownUrl(url)}: more than ${MAX_REDIRECTS} redirects`);
      }
      current = next;
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw new StageError(`${shownUrl(current)} answered HTTP ${status}`);
    }
    const header = res.headers["content-length"];
    const length = header === undefined ? undefined : Number(header);
    if (length !== undefined && length > limits.maxBytes) {
      res.destroy();
      throw new StageError(`${shownUrl(current)} is ${length} bytes, more than the ${limits.maxBytes} allowed`);
    }
    const output = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > limits.maxBytes) {
          res.destroy();
          throw new StageError(`${shownUrl(current)} sent more than the ${limits.maxBytes} bytes allowed`);
        }
        hash.update(chunk);
        await output.write(chunk);
      }
      await output.sync();
    } catch (err) {
      throw err instanceof StageError
        ? err
        : new StageError(
            `${shownUrl(current)}: the download broke off after ${bytes} bytes (${(err as Error).message})`,
          );
    } finally {
      await output.close();
    }
    if (!res.complete || (length !== undefined && bytes !== length)) {
      throw new StageError(
        `${shownUrl(current)}: the download broke off after ${bytes} of ${length ?? "an unknown number of"} bytes`,
      );
    }
    const sha256 = hash.digest("hex");
    if (limits.sha256 !== undefined && sha256 !== limits.sha256) {
      throw new StageError(`${shownUrl(current)}: its sha256 is ${sha256}, not the ${limits.sha256} asked for`);
    }
    return { bytes, sha256 };
  }
}

/** Copies one file with O_NOFOLLOW, checking it is still the file that was looked at, and hashes it. */
async function copyFile(from: string, expect: { dev: number; ino: number }, to: string) {
  const input = await open(from, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await input.stat();
    if (!st.isFile() || st.dev !== expect.dev || st.ino !== expect.ino) {
      throw new StageError(`${from} changed while it was being staged`);
    }
    const output = await open(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      for await (const chunk of input.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        await output.write(chunk);
      }
      await output.sync();
    } finally {
      await output.close();
    }
    return { bytes, sha256: hash.digest("hex") };
  } finally {
    await input.close();
  }
}

async function hashFile(path: string) {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest("hex") };
}

/** A symlink in SOURCE: the file it names when that is a regular file inside SOURCE, else a refusal. */
async function insideLink(path: string, realSource: string, shown: string) {
  const target = await realpath(path).catch(() => null);
  if (!target || !(target === realSource || target.startsWith(`${realSource}${sep}`))) {
    throw new StageError(
      `${shown} is a symlink pointing out of SOURCE (${target ?? "dangling"}); refusing to stage it`,
    );
  }
  const st = await lstat(target);
  if (!st.isFile()) {
    throw new StageError(`${shown} is a symlink to ${target}, which is not a regular file; refusing to stage it`);
  }
  return { path: target, st };
}

/** Copies the tree at `realSource` into `dest` (which exists and is empty); returns the files written. */
async function copyTree(realSource: string, dest: string): Promise<Manifest["files"]> {
  const files: Manifest["files"] = [];
  const walk = async (dir: string) => {
    for (const entry of (await readdir(dir)).sort()) {
      const from = join(dir, entry);
      const rel = relative(realSource, from);
      const to = join(dest, rel);
      const st = await lstat(from);
      if (st.isDirectory()) {
        await mkdir(to, { mode: 0o755 });
        await walk(from);
      } else if (st.isFile() || st.isSymbolicLink()) {
        const real = st.isSymbolicLink() ? await insideLink(from, realSource, rel) : { path: from, st };
        const copied = await copyFile(real.path, real.st, to);
        files.push({ path: rel.split(sep).join("/"), ...copied });
      } else {
        throw new StageError(`${rel} is not a regular file or directory; refusing to stage it`);
      }
    }
  };
  await walk(realSource);
  return files;
}

/** Re-reads what was written and compares it with what was read from SOURCE. */
async function verify(base: string, files: Manifest["files"]) {
  for (const f of files) {
    const written = await hashFile(join(base, ...f.path.split("/")));
    if (written.bytes !== f.bytes || written.sha256 !== f.sha256) {
      throw new StageError(`${f.path}: the copy does not match SOURCE (size or sha256 differ)`);
    }
  }
}

/** Removes dot-named temp entries of stages whose process is gone (killed half-way). */
async function sweepLeftovers(dir: string) {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const pid = /^\.(stage|remove)-(\d+)-/.exec(entry)?.[2];
    if (pid === undefined) {
      continue;
    }
    let alive = true;
    try {
      process.kill(Number(pid), 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) {
      await rm(join(dir, entry), { recursive: true, force: true });
    }
  }
}

const tempName = (kind: string) => `.${kind}-${process.pid}-${randomBytes(6).toString("hex")}`;

/**
 * Stages SOURCE as `<kind>s/<name>` under `cacheRoot` (already checked with {@link checkCacheRoot}).
 * Replaces an existing entry of that name only after the new copy is complete and verified.
 */
export async function stageCache(opts: {
  cacheRoot: string;
  source: string;
  name: string;
  kind?: CacheKind;
  /** The sha256 (hex) an https:// download must have; also accepted as the URL's `#sha256=` fragment. */
  sha256?: string;
  /** Most bytes an https:// download may have. Default {@link DEFAULT_MAX_DOWNLOAD_BYTES}. */
  maxBytes?: number;
  now?: () => Date;
}): Promise<CacheEntry> {
  const remote = /^https:\/\//i.test(opts.source) ? httpsSource(opts.source, opts.sha256) : null;
  if (!remote && opts.sha256 !== undefined) {
    throw new StageError("a sha256 is checked for https:// sources only (a local copy is verified against SOURCE)");
  }
  const limits = { maxBytes: opts.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES, sha256: remote?.sha256 };
  const source = remote ? "" : sourcePath(opts.source);
  const top = remote ? null : await lstat(source).catch(() => null);
  if (!remote && !top) {
    throw new StageError(`SOURCE ${source} does not exist`);
  }
  if (top?.isSymbolicLink()) {
    throw new StageError(`SOURCE ${source} is a symlink; name what it points to instead`);
  }
  const kind = opts.kind ?? (remote || top?.isFile() ? "image" : "model");
  const ref = cacheRef(kind, opts.name);
  const segments = ref.split("/");
  const parent = await mkdirsNoFollow(opts.cacheRoot, segments.slice(0, -1));
  const leaf = segments.at(-1)!;
  // `org` and `org/m` cannot both be models: one would be written inside the other, or replace it.
  if (kind === "model" && segments.length === 3 && (await lstat(join(parent, MODEL_MANIFEST)).catch(() => null))) {
    throw new StageError(`${segments.slice(0, 2).join("/")} is a staged model; ${ref} cannot live inside it`);
  }
  if (
    kind === "model" &&
    (await lstat(join(parent, leaf)).catch(() => null)) &&
    !(await lstat(join(parent, leaf, MODEL_MANIFEST)).catch(() => null))
  ) {
    throw new StageError(`${ref} holds other staged models (${ref}/…); remove them first`);
  }
  await sweepLeftovers(parent);
  const stagedAt = (opts.now?.() ?? new Date()).toISOString();
  const temp = join(parent, tempName("stage"));
  try {
    if (kind === "model") {
      if (top && !top.isDirectory()) {
        throw new StageError(`SOURCE ${source} is not a directory; a model is staged from its directory`);
      }
      await mkdir(temp, { mode: 0o755 });
      // A download is one file of the model, named by the URL's last path segment.
      const file = remote ? downloadName(remote.url) : "";
      const files = remote
        ? [{ path: file, ...(await download(remote.url, join(temp, file), limits)) }]
        : await copyTree(await realpath(source), temp);
      await verify(temp, files);
      const manifest: Manifest = { ref, bytes: files.reduce((n, f) => n + f.bytes, 0), stagedAt, files };
      await writeFile(join(temp, MODEL_MANIFEST), JSON.stringify(manifest), { mode: 0o644, flag: "wx" });
      const final = join(parent, leaf);
      // A directory cannot be renamed over a non-empty one: move the old entry aside first.
      const old = join(parent, tempName("remove"));
      const hadOld = await rename(final, old).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === "ENOENT") {
            return false;
          }
          throw err;
        },
      );
      await rename(temp, final);
      if (hadOld) {
        await rm(old, { recursive: true, force: true });
      }
      return { name: ref, bytes: manifest.bytes, stagedAt };
    }
    if (top && (!top.isFile() || !source.endsWith(".sif"))) {
      throw new StageError(`SOURCE ${source} is not a .sif file; an image is staged from its .sif file`);
    }
    const copied = top ? await copyFile(source, top, temp) : await download(remote!.url, temp, limits);
    await verify(parent, [{ path: posix.basename(temp), ...copied }]);
    const manifest: Manifest = { ref, bytes: copied.bytes, stagedAt, files: [{ path: `${leaf}.sif`, ...copied }] };
    // The manifest first: a .sif without one is not listed, one without a .sif neither.
    await writeFile(join(parent, imageManifest(leaf)), JSON.stringify(manifest), { mode: 0o644 });
    await rename(temp, join(parent, `${leaf}.sif`));
    return { name: ref, bytes: copied.bytes, stagedAt };
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/** Removes a staged reference; false when it was not there. */
export async function removeCache(cacheRoot: string, ref: string): Promise<boolean> {
  const path = cachePath(cacheRoot, ref);
  const st = await lstat(path).catch(() => null);
  if (!st) {
    return false;
  }
  if (st.isSymbolicLink()) {
    throw new StageError(`${path} is a symlink, not a staged cache; refusing to remove through it`);
  }
  const parent = posix.dirname(path);
  if (cacheRefKind(ref) === "image") {
    await rm(join(parent, imageManifest(posix.basename(ref))), { force: true });
    await rm(path, { force: true });
    return true;
  }
  const aside = join(parent, tempName("remove"));
  await rename(path, aside);
  await rm(aside, { recursive: true, force: true });
  return true;
}

/** How {@link listCaches} reads the cache root: this machine's files, or an executor's (a remote login node). */
export interface CacheReader {
  /** The names in `dir` (never `.`/`..`) with their own type, symlinks not followed; [] when `dir` is absent. */
  readdir(dir: string): Promise<{ name: string; type: "file" | "dir" | "other" }[]>;
  /** A manifest's text; null when it is absent or not a plain file. */
  readText(path: string): Promise<string | null>;
}

/** Largest manifest read: a model's lists every file with its sha256. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** This machine's files (the stage CLI on the login node). */
export const localCacheReader: CacheReader = {
  async readdir(dir) {
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ENOTDIR") {
        return [];
      }
      throw err;
    });
    return entries.map((d) => ({ name: d.name, type: d.isFile() ? "file" : d.isDirectory() ? "dir" : "other" }));
  },
  async readText(path) {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null);
    if (!handle) {
      return null;
    }
    try {
      return (await handle.stat()).isFile() ? await handle.readFile("utf8") : null;
    } finally {
      await handle.close();
    }
  },
};

/**
 * The cache root through the agent's executor, so the inventory lists what is staged where the
 * executor runs (over SSH: the login node, not the agent's machine). A directory is read with one
 * `find -printf` (GNU findutils, as on every Linux login node); a failure throws, so the inventory
 * publishes nothing rather than "none staged".
 */
export function executorCacheReader(executor: Pick<Executor, "run" | "stat" | "readFile">): CacheReader {
  return {
    async readdir(dir) {
      const st = await executor.stat(dir);
      if (!st?.isDirectory || st.isSymbolicLink) {
        return [];
      }
      const args = ["-P", dir, "-mindepth", "1", "-maxdepth", "1", "-printf", "%y %f\\0"];
      const result = await executor.run("find", args, { env: { PATH: "/usr/bin:/bin", LC_ALL: "C" } });
      if (result.code !== 0) {
        throw new Error(`cannot list ${dir}: ${result.stderr.trim() || `find exited ${result.code}`}`);
      }
      return result.stdout
        .split("\0")
        .filter((line) => line.length > 2)
        .map((line) => ({
          name: line.slice(2),
          type: line[0] === "f" ? "file" : line[0] === "d" ? "dir" : "other",
        }));
    },
    async readText(path) {
      const data = await executor.readFile(path, { length: MAX_MANIFEST_BYTES });
      return data === null ? null : data.toString("utf8");
    },
  };
}

async function readManifest(reader: CacheReader, path: string, ref: string): Promise<CacheEntry | null> {
  try {
    const text = await reader.readText(path);
    const m = (text === null ? null : JSON.parse(text)) as Partial<Manifest> | null;
    if (m?.ref !== ref || typeof m.bytes !== "number" || typeof m.stagedAt !== "string") {
      return null;
    }
    return { name: ref, bytes: m.bytes, stagedAt: m.stagedAt };
  } catch {
    return null;
  }
}

/**
 * What is staged: complete entries only (a manifest and its data, no dot names, no symlinks),
 * sorted by name, at most {@link MAX_INVENTORY_CACHES}.
 */
export async function listCaches(cacheRoot: string, reader: CacheReader = localCacheReader): Promise<CacheEntry[]> {
  const out: CacheEntry[] = [];
  const names = async (dir: string) => (await reader.readdir(dir)).filter((d) => !d.name.startsWith("."));
  for (const kind of ["model", "image"] as const) {
    const base = posix.join(cacheRoot, CACHE_KIND_DIR[kind]);
    const visit = async (dir: string, prefix: string, depth: number) => {
      for (const d of await names(dir)) {
        if (out.length >= MAX_INVENTORY_CACHES) {
          return;
        }
        const name = `${prefix}${d.name}`;
        if (kind === "image" && d.type === "file" && d.name.endsWith(".sif")) {
          const ref = `images/${name.slice(0, -4)}`;
          const entry = CACHE_REF.test(ref)
            ? await readManifest(reader, posix.join(dir, imageManifest(d.name.slice(0, -4))), ref)
            : null;
          if (entry) {
            out.push(entry);
          }
        } else if (d.type === "dir") {
          const ref = `${CACHE_KIND_DIR[kind]}/${name}`;
          const entry =
            kind === "model" && CACHE_REF.test(ref)
              ? await readManifest(reader, posix.join(dir, d.name, MODEL_MANIFEST), ref)
              : null;
          if (entry) {
            out.push(entry);
          } else if (depth === 0 && CACHE_NAME.test(d.name)) {
            // Only a name a reference can hold is looked into (never one with a newline or a space).
            await visit(posix.join(dir, d.name), `${name}/`, 1);
          }
        }
      }
    };
    await visit(base, "", 0);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * At lease time: the path of each named cache, or the first one that is not (or no longer) staged.
 * Goes through the executor (the login node may be remote) and follows no symlink.
 */
export async function resolveJobCaches(
  executor: Pick<Executor, "stat" | "realpath">,
  cacheRoot: string | null,
  refs: readonly string[],
): Promise<{ paths: { ref: string; path: string }[] } | { missing: string; why: string }> {
  const paths: { ref: string; path: string }[] = [];
  for (const ref of refs) {
    if (cacheRoot === null) {
      return { missing: ref, why: "this agent has no SLURMGATE_CACHE_ROOT" };
    }
    const path = cachePath(cacheRoot, ref);
    const manifest =
      cacheRefKind(ref) === "image"
        ? posix.join(posix.dirname(path), imageManifest(posix.basename(ref)))
        : posix.join(path, MODEL_MANIFEST);
    const [st, real, man] = await Promise.all([executor.stat(path), executor.realpath(path), executor.stat(manifest)]);
    if (!st || !man || st.isSymbolicLink || real !== path) {
      return { missing: ref, why: `${path} is not staged on this cluster` };
    }
    paths.push({ ref, path });
  }
  return { paths };
}
