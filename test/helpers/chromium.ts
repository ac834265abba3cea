/**
 * Debian's chromium driven by playwright-core, for every browser test: never a downloaded browser,
 * and a machine without chromium fails the test instead of skipping it.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run test/system-tools.sh (installs Debian's chromium)`);
  }
  // Root (CI) cannot use chromium's user-namespace sandbox.
  return chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
}
