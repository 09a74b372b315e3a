#!/usr/bin/env bash
# Runs every test (unit, s3rver integration, FUSE and NFS end to end) on Debian 12 as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx vitest run "$@"
