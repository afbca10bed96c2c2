#!/usr/bin/env bash
# Builds the Rust example Worker (worker-example/rust/) with worker-build into
# worker-example/rust/build/ (index.js + index_bg.wasm), downloading nothing: worker-build is
# told to use the installed wasm-bindgen (WASM_BINDGEN_BIN, the version in the Worker's
# Cargo.lock), binaryen's wasm-opt from npm (WASM_OPT_BIN) and wrangler's esbuild (ESBUILD_BIN).
# Compiles into its own target/rust-worker/: in the shared target/ the SDK built as its dependency
# (with feature `worker`) would overwrite target/wasm32-unknown-unknown/release/imgbind_sdk.wasm,
# which scripts/build-sdk.sh hands to wasm-bindgen — the npm SDK then imported the worker crate's
# JS snippets and failed to load in workerd.
# Also the `[build] command` of worker-example/rust/wrangler.toml.
#
#   scripts/build-rust-worker.sh          build, unless build/ is newer than every input (the
#                                         Worker's and the SDK's sources, manifests and lock file)
#   scripts/build-rust-worker.sh --force  build anyway
#   scripts/build-rust-worker.sh --lint   rustfmt --check and clippy -D warnings on wasm32: the
#                                         Worker crate (its own workspace, so `cargo fmt --all` and
#                                         the root clippy runs do not see it) and the SDK's Rust API
#                                         (feature `worker`)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

crate=worker-example/rust
export CARGO_TARGET_DIR="$IMGBIND_ROOT/target/rust-worker"

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  --lint)
    (cd "$crate" && cargo fmt --check)
    (cd "$crate" && cargo clippy --release --target wasm32-unknown-unknown --all-targets -- -D warnings)
    cargo clippy --release -p imgbind-sdk --features worker --target wasm32-unknown-unknown --all-targets -- -D warnings
    log build-rust-worker "lint ok"
    exit 0
    ;;
  *) log build-rust-worker "usage: scripts/build-rust-worker.sh [--force|--lint]"; exit 2 ;;
esac

# Up to date? (wrangler dev runs this as its build command on every start.)
out="$crate/build/index_bg.wasm"
if ((!force)) && [[ -f "$out" && -f "$crate/build/index.js" ]] \
  && [[ -z "$(find "$crate/src" "$crate/Cargo.toml" "$crate/Cargo.lock" sdk/src sdk/Cargo.toml \
    wire/src wire/Cargo.toml -newer "$out" -print -quit)" ]]; then
  log build-rust-worker "$crate/build is up to date"
  exit 0
fi
WORKER_BUILD_VERSION=0.8.7 # as in scripts/setup.sh; must match the worker crate's 0.8 line
if [[ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]]; then
  log build-rust-worker "worker-build $WORKER_BUILD_VERSION is not installed: run scripts/setup.sh"
  exit 1
fi

# The wasm-bindgen CLI must be exactly the library's version in the Worker's lock file.
wanted_bindgen="$(awk '
  $0 == "name = \"wasm-bindgen\"" { found = 1; next }
  found && /^version = / { gsub(/version = |"/, ""); print; exit }
' "$crate/Cargo.lock")"
WASM_BINDGEN_BIN="$(command -v wasm-bindgen || true)"
if [[ -z "$WASM_BINDGEN_BIN" || "$("$WASM_BINDGEN_BIN" --version | awk '{print $2}')" != "$wanted_bindgen" ]]; then
  log build-rust-worker "wasm-bindgen $wanted_bindgen is not installed: run scripts/setup.sh"
  exit 1
fi
export WASM_BINDGEN_BIN
export WASM_OPT_BIN="$IMGBIND_ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$IMGBIND_ROOT/node_modules/.bin/esbuild"
for tool in "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [[ -x "$tool" ]] || { log build-rust-worker "$tool is missing: run scripts/setup.sh (npm)"; exit 1; }
done

log build-rust-worker "worker-build --release ($crate)"
(cd "$crate" && worker-build --release)
log build-rust-worker "$crate/build/index_bg.wasm $(wc -c <"$crate/build/index_bg.wasm") bytes"
