#!/usr/bin/env bash
# Starts the demo: an embedded S3 server and a share mounted by FUSE (and exported by NFS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./bin/bucketgate demo "$@"
