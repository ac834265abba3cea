import { mkdtempSync } from "node:fs";
import { join } from "node:path";

/**
 * A fresh directory under /var/tmp, inside the run's own directory there when vitest's global setup
 * made one (test/global-setup.ts removes it at the end), so what the tests put there does not pile up.
 */
export function varTmpDir(prefix: string): string {
  return mkdtempSync(join(process.env.SLURMGATE_TEST_VAR_TMP ?? "/var/tmp", prefix));
}
