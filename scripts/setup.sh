#!/usr/bin/env bash
# Installs everything bucketgate needs on Debian 12 (run as root), then builds it.
#   system: FUSE (fusermount, libfuse2 + headers for the native binding), libnfs client tools,
#           systemd (systemd-notify for Type=notify readiness, systemd-analyze for the unit tests),
#           a C toolchain for native addons;
#   npm:    the locked dependencies (npm ci), then the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(fuse libfuse2 libfuse-dev libnfs-utils libnfs-dev pkg-config build-essential python3 attr systemd)
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
  echo "setup: npm ci (builds better-sqlite3 and the FUSE binding from source)"
  npm ci --no-audit --no-fund
fi
# Native modules are built from source by their install scripts; should a future npm skip those
# (it warns about "allowScripts"), build them explicitly.
[ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || npm rebuild better-sqlite3
[ -f build/Release/bucketgate_fuse.node ] || npm run install
npm run build --silent
