#!/usr/bin/env bash
# Installs everything bucketgate needs on Debian 12 (run as root), then builds it.
#   system: FUSE (fusermount, libfuse2 + headers for the native binding), libnfs client tools,
#           systemd (systemd-notify for Type=notify readiness, systemd-analyze for the unit tests),
#           a C toolchain for native addons; fincore (util-linux-extra, priority "standard", so
#           missing from minimal images) for the page-cache test;
#   npm:    the locked dependencies (npm ci), then the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(fuse libfuse2 libfuse-dev libnfs-utils libnfs-dev pkg-config build-essential python3 attr systemd
      util-linux-extra)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f build/Release/bucketgate_fuse.node ]; then
  echo "setup: npm ci (builds better-sqlite3 and our native addons from source)"
  npm ci --no-audit --no-fund
fi
# Native modules are built from source by their install scripts; should a future npm skip those
# (it warns about "allowScripts"), build them explicitly.
[ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || npm rebuild better-sqlite3
# Our addons (binding.gyp): rebuilt when one is missing or older than its sources (a checkout
# that predates an addon, or a changed native/*.cc).
stale=0
for a in bucketgate_fuse bucketgate_io; do
  f=build/Release/$a.node
  if [ ! -f "$f" ] || [ binding.gyp -nt "$f" ] || [ -n "$(find native -newer "$f" -name '*.cc' -print -quit)" ]; then stale=1; fi
done
if [ "$stale" = 1 ]; then
  echo "setup: building the native addons (node-gyp)"
  npm run install --silent >/dev/null
fi
# The Node the native modules are built for, which the mount helper runs (bin/mount.fuse.bucketgate;
# npm ci records it, a tree installed before that did not).
[ -f build/node-path ] || node -e "require('fs').writeFileSync('build/node-path', process.execPath + '\n')"
npm run build --silent
