#!/usr/bin/env bash
# Builds what `run.sh` and the tests use, in the release profile: the backend binary
# target/release/imgbind, and the SDK's wasm + JS into sdk/dist/.
#
#   scripts/build.sh               the backend binary only (what run.sh needs)
#   scripts/build.sh --with-tests  also every native test target and the Rust example Worker
#                                  (what test.sh needs)
#
# Why --with-tests: dev-dependencies add features to shared crates (tokio, hyper, image), and cargo
# builds a crate once per feature set. Building the binary and the tests in one invocation unifies
# the features, so `cargo test` afterwards reuses everything instead of compiling the codecs again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

case "${1:-}" in
  "") cargo_args=(-p imgbind-backend) ;;
  --with-tests) cargo_args=(--workspace --exclude imgbind-sdk --all-targets) ;;
  *) log build "usage: scripts/build.sh [--with-tests]"; exit 2 ;;
esac

log build "cargo build --release ${cargo_args[*]}"
cargo build --release "${cargo_args[@]}"

if [[ -x scripts/build-sdk.sh ]]; then
  log build "scripts/build-sdk.sh"
  scripts/build-sdk.sh
else
  log build "scripts/build-sdk.sh is missing: the SDK (sdk/dist/) is not built"
  exit 1
fi
# The Rust example Worker (tests/rust-worker.test.js runs its worker-build output).
if [[ "${1:-}" == --with-tests ]]; then
  log build "scripts/build-rust-worker.sh"
  scripts/build-rust-worker.sh
fi
log build "ok"
