#!/usr/bin/env bash
# Runs any Worker that uses the native Images binding with that binding served by the imgbind
# backend, from a clone: a thin wrapper over the package's `imgbind dev` (cli/dev.mjs) that uses
# this clone's wrangler, its Node 22 and its target/release/imgbind.
#   scripts/run-worker.sh [--socket PATH | --address HOST:PORT] [--ip ADDR] [--port N] [--data DIR] path/to/wrangler.toml
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
export IMGBIND_BINARY="${IMGBIND_BINARY:-$IMGBIND_ROOT/target/release/imgbind}"
[[ -x "$IMGBIND_BINARY" ]] || { log run-worker "$IMGBIND_BINARY not found: run scripts/build.sh first"; exit 2; }
# exec so signals reach it directly; Node 22 from node_modules (wrangler refuses older ones).
exec "$IMGBIND_ROOT/node_modules/.bin/node" "$IMGBIND_ROOT/cli/imgbind.mjs" dev "$@"
