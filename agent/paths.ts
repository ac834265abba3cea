/**
 * Confines job directories, working directories and bind sources to the shared roots the agent
 * allows (DESIGN invariant 5). Decisions use realpath, so symlinks cannot escape, and compare whole
 * path components, so `/data/safe` never admits `/data/safe-but-unsafe`.
 */
import { posix } from "node:path";
import type { Executor } from "./executor/types.ts";

export class PathError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = "PathError";
    this.field = field;
  }
}

/** True when `path` is `root` or below it, by whole components. Both must be normalised absolute paths. */
export function isInside(path: string, root: string): boolean {
  const r = root.endsWith("/") && root !== "/" ? root.slice(0, -1) : root;
  return path === r || path.startsWith(r === "/" ? "/" : `${r}/`);
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
  if (!roots.real.some((root) => isInside(real, root))) {
    throw new PathError(field, `${path} resolves to ${real}, outside the allowed roots`);
  }
  return real;
}

/** Creates `<first root>/<owner>/<jobId>` and returns its real path. */
export async function prepareJobDir(executor: Executor, roots: Roots, owner: string, jobId: string): Promise<string> {
  const base = roots.real[0]!;
  const dir = posix.join(base, owner, jobId);
  await executor.mkdir(dir, 0o700);
  return confine(executor, roots, dir, "jobDir");
}

/** `spec.workdir` (relative) under the first root; created when missing, then checked. */
export async function resolveWorkdir(executor: Executor, roots: Roots, workdir: string): Promise<string> {
  const path = posix.join(roots.real[0]!, workdir);
  if (!isInside(posix.normalize(path), roots.real[0]!)) {
    throw new PathError("workdir", `${workdir} leaves the shared root`);
  }
  await executor.mkdir(path, 0o700);
  return confine(executor, roots, path, "workdir");
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
