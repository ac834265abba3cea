/**
 * Shared roots, lexically: the gateway refuses a path that cannot be inside the roots the
 * cluster's agent enforces, before the job is queued. The agent stays the final judge and
 * re-checks with realpath (agent/paths.ts), so a symlink inside a root cannot escape either.
 */

/**
 * True when `path` is `root` or below it, by whole components, so `/data/safe` never admits
 * `/data/safe-but-unsafe`. Both are absolute; a path with `.` or `..` segments is never inside.
 * @example isInsideRoot("/shared/alice/data", "/shared") // => true
 * @example isInsideRoot("/shared-other/x", "/shared") // => false
 * @example isInsideRoot("/shared/../etc", "/shared") // => false
 */
export function isInsideRoot(path: string, root: string): boolean {
  if (!path.startsWith("/") || path.split("/").some((segment) => segment === "." || segment === "..")) {
    return false;
  }
  const r = root.length > 1 && root.endsWith("/") ? root.slice(0, -1) : root;
  return path === r || path.startsWith(r === "/" ? "/" : `${r}/`);
}

/** True when `path` is inside one of `roots`. */
export function isInsideRoots(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => isInsideRoot(path, root));
}

/**
 * The roots paths are checked against: the agent's own when it publishes them (it is the one that
 * enforces them), else the admin's cluster config. The first holds job directories and workdirs.
 * @example effectiveRoots(["/shared"], ["/scratch", "/shared"]) // => ["/scratch", "/shared"]
 */
export function effectiveRoots(admin: readonly string[], agent: readonly string[] | undefined): string[] {
  return [...(agent !== undefined && agent.length > 0 ? agent : admin)];
}
