#!/usr/bin/env bash
# Runs any Worker that uses the native Images binding with that binding served by the imgbind
# backend: scripts/run-worker.sh [--socket PATH | --address HOST:PORT] [--ip ADDR] [--port N] path/to/wrangler.toml
# The Worker's code and config are used unchanged; see scripts/run-worker.mjs and docs/WORKERS.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# Node 22 from node_modules (wrangler refuses older ones); exec so signals reach it directly.
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
exec "$IMGBIND_ROOT/node_modules/.bin/node" "$IMGBIND_ROOT/scripts/run-worker.mjs" "$@"
