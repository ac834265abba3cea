/**
 * `slurmgate agent doctor`'s shared-root check on real directories: a world-writable root is right
 * only when sticky (personal agents and sudo-mode site agents need users to create their own
 * directory there), and the fix it prints matches what is wrong.
 */
import { chmodSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkRoots } from "../../agent/doctor.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";

function root(mode: number): string {
  const dir = join(mkdtempSync(join(tmpdir(), "sg-doctor-")), "root");
  mkdirSync(dir);
  chmodSync(dir, mode);
  return dir;
}

async function check(dir: string) {
  const [result] = await checkRoots(createLocalExecutor(), { SLURMGATE_SHARED_ROOTS: [dir] });
  return result!;
}

describe("doctor: shared roots", () => {
  it("passes a sticky world-writable root, as scratch file systems are (chmod 1777)", async () => {
    expect(await check(root(0o1777))).toMatchObject({ ok: true, detail: expect.stringMatching(/sticky/) });
  });

  it("passes a root only its owner may write", async () => {
    expect(await check(root(0o755))).toMatchObject({ ok: true, detail: expect.stringMatching(/not world-writable/) });
  });

  it("fails a world-writable root without the sticky bit, and says to add it", async () => {
    const dir = root(0o777);
    const result = await check(dir);
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/without the sticky bit/);
    expect(result.fix).toMatch(new RegExp(`^chmod \\+t ${dir}`));
  });

  it("fails a root that is missing or not a directory", async () => {
    const result = await check(join(root(0o755), "missing"));
    expect(result).toMatchObject({ ok: false, detail: "does not exist or is not a directory" });
  });
});
