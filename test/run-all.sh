#!/usr/bin/env bash
# The whole test suite, as `npm test` runs it: static checks, then a real two-cluster Slurm and a
# loopback sshd, then every vitest suite. Nothing is skipped: if Slurm cannot come up, this fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "typecheck"
npx tsc --noEmit

step "lint and format"
npx biome ci .

step "generated files are up to date (OpenAPI document, client types)"
npm run --silent gen:check

step "system tools (sudo, chromium, slurmrestd)"
bash test/system-tools.sh

step "local Slurm clusters (alpha, beta)"
bash test/slurm/cluster.sh up

if [ -f test/ssh/sshd.sh ]; then
  step "loopback sshd for SSH mode"
  bash test/ssh/sshd.sh up
fi

step "vitest"
results=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
# One plain closing line with the counts, whatever the reporter above printed.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$results" || true
rm -f "$results"
exit "$status"
