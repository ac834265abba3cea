import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * For a bench section whose agent writes into the test cluster's shared root (which outlives the
 * run): remembers what `dir` holds now and returns the cleanup that removes whatever appeared since.
 * A full `npm run bench` makes over 20,000 job directories there; kept, they filled the disk.
 */
export function removeWhatAppears(dir: string): () => void {
  const before = new Set(existsSync(dir) ? readdirSync(dir) : []);
  return () => {
    if (!existsSync(dir)) {
      return;
    }
    for (const name of readdirSync(dir)) {
      if (!before.has(name)) {
        rmSync(join(dir, name), { recursive: true, force: true });
      }
    }
  };
}
