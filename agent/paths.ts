/**
 * Confines job directories, working directories and bind sources to the shared roots the agent
 * allows (DESIGN invariant 5). Directories are created one level at a time, each component checked
 * BEFORE anything is created under it, so nothing ever appears outside the roots; decisions use
 * realpath, so symlinks cannot escape, and compare whole path components, so `/data/safe` never
 * admits `/data/safe-but-unsafe`.
 */
import { posix } from "node:path";
import { LeaseBatch } from "../schemas/agent.ts";
import { RELATIVE_PATH, USER_NAME } from "../schemas/patterns.ts";
import { isInsideRoot } from "../schemas/roots.ts";
import type { Executor } from "./executor/types.ts";
import { IdentityRefusal } from "./identity/guard.ts";

export class PathError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = "PathError";
    this.field = field;
  }
}

export type Roots = { declared: string[]; real: string[] };

/** Resolves the configured roots once at start; a root that does not exist is a config error. */
export async function resolveRoots(executor: Executor, declared: string[]): Promise<Roots> {
  const real: string[] = [];
  for (const root of declared) {
    const resolved = await executor.realpath(root);
    if (!resolved) {
      throw new Error(`shared root ${root} does not exist`);
    }
    real.push(resolved);
  }
  return { declared, real };
}

async function confine(executor: Executor, roots: Roots, path: string, field: string): Promise<string> {
  const real = await executor.realpath(path);
  if (!real) {
    throw new PathError(field, `${path} does not exist`);
  }
  if (!roots.real.some((root) => isInsideRoot(real, root))) {
    throw new PathError(field, `${path} resolves to ${real}, outside the allowed roots`);
  }
  return real;
}

const JOB_ID = /^job_[0-9a-z]{20,40}$/;

/**
 * Walks `segments` down from `base` (a real root), creating what is missing ONE level at a time with
 * mode 0700, and returns the real path reached and whether this very walk created the last directory.
 * Nothing is ever created outside the roots:
 * - each segment is a plain name (never `.`, `..`, empty or with a `/`), checked before any I/O;
 * - each existing component is lstat-ed; a symlink is refused, except (with `followInside`) one
 *   whose target is an existing directory inside the roots, where the walk continues from the target;
 * - creation goes through {@link Executor.mkdirNoFollow}, which never creates through a symlink, and
 *   the new directory must resolve to itself afterwards (a swap in between is refused).
 */
async function walkCreate(
  executor: Executor,
  roots: Roots,
  base: string,
  segments: string[],
  field: string,
  followInside: boolean,
): Promise<{ real: string; created: boolean }> {
  for (const segment of segments) {
    if (!/^[A-Za-z0-9_.+-]+$/.test(segment) || segment === "." || segment === "..") {
      throw new PathError(field, `${JSON.stringify(segment)} is not a plain directory name`);
    }
  }
  let current = base;
  let created = false;
  let checked: string | null = null;
  for (const segment of segments) {
    const next = posix.join(current, segment);
    let st = await executor.stat(next);
    created = false;
    checked = null;
    if (!st) {
      created = await executor.mkdirNoFollow(next, 0o700).catch((err: { code?: string; message?: string }) => {
        if (err instanceof IdentityRefusal) {
          throw err; // sudo refused to act as the job's account: not a path problem
        }
        throw new PathError(field, `${next} cannot be created safely: ${err.message ?? err.code}`);
      });
      st = await executor.stat(next);
      if (created) {
        if (!st?.isDirectory || (await executor.realpath(next)) !== next) {
          throw new PathError(field, `${next} changed while it was being created; refusing it`);
        }
        checked = next;
      }
    }
    if (!st) {
      throw new PathError(field, `${next} vanished while it was being created`);
    }
    if (st.isSymbolicLink) {
      const real = await executor.realpath(next);
      if (!real) {
        throw new PathError(field, `${next} is a dangling symlink`);
      }
      if (!followInside || !roots.real.some((root) => isInsideRoot(real, root))) {
        throw new PathError(field, `${next} is a symlink to ${real}; refusing to create anything through it`);
      }
      if (!(await executor.stat(real))?.isDirectory) {
        throw new PathError(field, `${next} is a symlink to ${real}, which is not a directory`);
      }
      current = real;
      continue;
    }
    if (!st.isDirectory) {
      throw new PathError(field, `${next} exists and is not a directory`);
    }
    current = next;
  }
  // The last word is realpath's: whatever happened on the way, the result must be inside. A
  // directory this walk just created was realpath-checked right after mkdir: no second realpath.
  if (checked !== null && checked === current && roots.real.some((root) => isInsideRoot(checked!, root))) {
    return { real: checked, created };
  }
  return { real: await confine(executor, roots, current, field), created };
}

/**
 * The job directory's name under `<root>/<owner>/`: attempt 1 keeps `<jobId>`, and each later attempt
 * gets a directory of its own, `<jobId>.attempt-<n>` (a name no job id can have), so a retry never
 * writes over the files of the attempt before it, which it can still read to resume.
 * @example jobDirName("job_01…", 2) === "job_01….attempt-2"
 */
export function jobDirName(jobId: string, attempt: number): string {
  return attempt > 1 ? `${jobId}.attempt-${attempt}` : jobId;
}

/**
 * Creates `<first root>/<owner>/<jobDirName(jobId, attempt)>` and returns its real path. The owner and job id come from
 * the gateway, which validates them; the agent checks them again and follows no symlink here.
 */
export async function prepareJobDir(
  executor: Executor,
  roots: Roots,
  owner: string,
  jobId: string,
  attempt = 1,
): Promise<string> {
  return (await createJobDir(executor, roots, owner, jobId, attempt)).dir;
}

/**
 * {@link prepareJobDir}, also saying whether the job directory was `fresh`: created just now by this
 * call (mode 0700, realpath-checked), so it holds nothing from an earlier try of this attempt.
 */
export async function createJobDir(
  executor: Executor,
  roots: Roots,
  owner: string,
  jobId: string,
  attempt = 1,
): Promise<{ dir: string; fresh: boolean }> {
  if (!USER_NAME.test(owner)) {
    throw new PathError("owner", `${JSON.stringify(owner)} is not a valid user name`);
  }
  if (!JOB_ID.test(jobId)) {
    throw new PathError("jobId", `${JSON.stringify(jobId)} is not a job id`);
  }
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new PathError("attempt", `${attempt} is not an attempt number`);
  }
  const made = await walkCreate(executor, roots, roots.real[0]!, [owner, jobDirName(jobId, attempt)], "jobDir", false);
  return { dir: made.real, fresh: made.created };
}

/**
 * Creates `<first root>/<owner>/<batch id>`, a sweep batch's directory (its array script and the
 * per-index element files), exactly like a job directory, and returns its real path.
 */
export async function prepareBatchDir(executor: Executor, roots: Roots, owner: string, batchId: string) {
  if (!USER_NAME.test(owner)) {
    throw new PathError("owner", `${JSON.stringify(owner)} is not a valid user name`);
  }
  if (!LeaseBatch.shape.id.safeParse(batchId).success) {
    throw new PathError("batch.id", `${JSON.stringify(batchId)} is not a batch id`);
  }
  return (await walkCreate(executor, roots, roots.real[0]!, [owner, batchId], "batchDir", false)).real;
}

/**
 * `spec.workdir` (relative) under the first root; what is missing is created, one level at a time.
 * An existing symlink on the way is followed only when it stays inside the roots.
 */
export async function resolveWorkdir(executor: Executor, roots: Roots, workdir: string): Promise<string> {
  if (!RELATIVE_PATH.test(workdir)) {
    throw new PathError("workdir", `${JSON.stringify(workdir)} is not a relative path without '.' or '..' segments`);
  }
  return (await walkCreate(executor, roots, roots.real[0]!, workdir.split("/"), "workdir", true)).real;
}

/** Bind sources and image files must exist inside the roots. */
export async function checkContainerPaths(
  executor: Executor,
  roots: Roots,
  container: { image?: string; images?: Record<string, string | undefined>; binds: { src: string }[] } | undefined,
): Promise<void> {
  if (!container) {
    return;
  }
  for (const [index, bind] of container.binds.entries()) {
    await confine(executor, roots, bind.src, `container.binds.${index}.src`);
  }
  const images = [container.image, ...Object.values(container.images ?? {})].filter((x): x is string => Boolean(x));
  for (const image of images) {
    if (image.startsWith("/")) {
      await confine(executor, roots, image, "container.image");
    }
  }
}
