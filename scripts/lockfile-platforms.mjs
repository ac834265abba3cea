#!/usr/bin/env node
// Adds lock entries for platform-specific optional packages that the registry mirror this project
// is built with does not serve (e.g. @biomejs/cli-darwin-arm64). npm leaves them out of
// package-lock.json when it cannot fetch their metadata, and `npm ci` then refuses the lock as out
// of sync (npm/cli#8320, #4828). The entries carry only what npm needs to skip them on other
// platforms: version, os, cpu, libc. Run it after `npm install` changes the lock.
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;

const platformOf = (name) => {
  const os = /darwin/.test(name)
    ? "darwin"
    : /win32|windows/.test(name)
      ? "win32"
      : /android/.test(name)
        ? "android"
        : /linux/.test(name)
          ? "linux"
          : null;
  const cpu = /arm64|aarch64/.test(name) ? "arm64" : /x64|-64\b/.test(name) ? "x64" : null;
  const libc = /musl/.test(name) ? "musl" : /glibc|gnu/.test(name) ? "glibc" : null;
  return { os, cpu, libc };
};

let added = 0;
for (const [key, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const { os, cpu, libc } = platformOf(name);
    if (!os || packages[`node_modules/${name}`] || packages[`${key}/node_modules/${name}`]) {
      continue;
    }
    packages[`node_modules/${name}`] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      os: [os],
      ...(cpu ? { cpu: [cpu] } : {}),
      ...(libc ? { libc: [libc] } : {}),
    };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`lockfile-platforms: added ${added} entries\n`);
