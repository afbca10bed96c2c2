#!/usr/bin/env bash
# Builds what `run.sh` and the tests use, in the release profile (the codecs compile once for
# both): the backend binary target/release/imgbind, and the SDK's wasm + JS into sdk/dist/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

log build "cargo build --release -p imgbind-backend"
cargo build --release -p imgbind-backend

if [[ -x scripts/build-sdk.sh ]]; then
  log build "scripts/build-sdk.sh"
  scripts/build-sdk.sh
else
  log build "scripts/build-sdk.sh is missing: the SDK (sdk/dist/) is not built"
  exit 1
fi
log build "ok"
