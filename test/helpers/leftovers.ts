import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * For a shared root that outlives the run (the test clusters'): remembers what it holds now, two
 * levels deep, and returns the cleanup that removes whatever appeared since: new owner directories,
 * and new job directories inside those that were there.
 */
export function removeWhatAppears(root: string): () => void {
  const list = (d: string) => {
    try {
      return readdirSync(d);
    } catch {
      return []; // missing, or not a directory
    }
  };
  const before = new Map(list(root).map((owner) => [owner, new Set(list(join(root, owner)))]));
  return () => {
    for (const owner of list(root)) {
      const known = before.get(owner);
      const appeared = known ? list(join(root, owner)).filter((name) => !known.has(name)) : [""];
      for (const name of appeared) {
        try {
          rmSync(join(root, owner, name), { recursive: true, force: true });
        } catch {
          // Best effort: what a run cannot remove (another user's files, as a non-root run) stays.
        }
      }
    }
  };
}
