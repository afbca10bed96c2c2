#!/usr/bin/env bash
# Builds the SDK: Rust → wasm32 → wasm-bindgen (web target, which loads in workerd) → wasm-opt,
# into sdk/dist/ (generated, gitignored). Usage: scripts/build-sdk.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.cargo/bin:$PATH"
WASM_BINDGEN_VERSION=0.2.130 # must equal the `wasm-bindgen = "=…"` pin in sdk/Cargo.toml
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  echo "build-sdk: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION" >&2
  cargo install --locked wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown

cargo build --release --target wasm32-unknown-unknown -p imgbind-sdk
# Stale snippets from an earlier build (e.g. with other features) would be imported by nothing but
# shipped in the npm package; start clean.
rm -rf sdk/dist/snippets
wasm-bindgen --target web --out-dir sdk/dist --out-name imgbind_sdk \
  target/wasm32-unknown-unknown/release/imgbind_sdk.wasm

# Features rustc enables by default for wasm32-unknown-unknown; wasm-opt must accept them.
node_modules/.bin/wasm-opt -O3 --strip-debug \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  sdk/dist/imgbind_sdk_bg.wasm -o sdk/dist/imgbind_sdk_bg.wasm

echo "build-sdk: sdk/dist/imgbind_sdk_bg.wasm $(wc -c < sdk/dist/imgbind_sdk_bg.wasm) bytes"
