#!/usr/bin/env bash
# Tools the suite drives besides Slurm and sshd (those scripts install their own): sudo for the site
# agent run as a service account, Debian's chromium for the browser tests, Debian's slurmrestd for
# the REST submission backend and its benchmark, /usr/bin/python3 for the agent's posix_spawn
# command spawner. Installed when missing.
set -euo pipefail
missing=()
command -v sudo >/dev/null || missing+=(sudo)
command -v chromium >/dev/null || missing+=(chromium)
command -v slurmrestd >/dev/null || missing+=(slurmrestd)
[ -x /usr/bin/python3 ] || missing+=(python3-minimal)
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-tools.sh: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null ||
    { apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null; }
fi
command -v sudo >/dev/null && command -v chromium >/dev/null && command -v slurmrestd >/dev/null && [ -x /usr/bin/python3 ]
