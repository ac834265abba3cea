/**
 * vitest's global setup: a test run leaves nothing behind on the machine.
 *
 * - Temporary files: TMPDIR points at one directory of the run's own, removed at the end. Tests make
 *   their directories with mkdtemp(tmpdir()) and the processes they start inherit TMPDIR; a full run
 *   used to leave ~6,000 directories and several GB in /tmp. Those made under /var/tmp
 *   (test/helpers/var-tmp.ts) go into a directory of the run's own there, removed the same way.
 * - Job directories: the agents of the e2e suites write into the test clusters' shared root, which
 *   outlives the run; whatever appeared there during the run (owner directories, and job directories
 *   inside those already there) is removed at the end, when no agent runs any more.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slurmClusters } from "./e2e/harness.ts";
import { removeWhatAppears } from "./helpers/leftovers.ts";

export default function setup(): () => void {
  const cleanups = [
    runDirectory("TMPDIR", tmpdir()),
    runDirectory("SLURMGATE_TEST_VAR_TMP", "/var/tmp"),
    ...sharedRoots().map(removeWhatAppears),
  ];
  return () => {
    for (const cleanup of cleanups) {
      cleanup();
    }
  };
}

/** A directory of the run's own under `parent`, named in `variable` until the run ends, then removed. */
function runDirectory(variable: string, parent: string): () => void {
  const previous = process.env[variable];
  const dir = mkdtempSync(join(parent, "slurmgate-tests-"));
  // As /tmp itself: the tests' other POSIX users make files here too.
  chmodSync(dir, 0o1777);
  process.env[variable] = dir;
  return () => {
    if (previous === undefined) {
      delete process.env[variable];
    } else {
      process.env[variable] = previous;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** The clusters' shared roots, when the clusters are up (a unit-only run needs none). */
function sharedRoots(): string[] {
  try {
    return [...new Set(Object.values(slurmClusters()).map((c) => c.sharedRoot))];
  } catch {
    return [];
  }
}
