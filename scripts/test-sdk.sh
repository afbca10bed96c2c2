#!/usr/bin/env bash
# SDK tests: build (wasm + bindings + wasm-opt), host unit tests (framing, op list, errors, length
# check, base64), wasm-bindgen tests under Node, Node tests of the ESM API, and the TypeScript check
# against @cloudflare/workers-types. Usage: scripts/test-sdk.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Node 22 from node_modules first: wasm-bindgen-test-runner runs the wasm tests under `node`.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

scripts/build-sdk.sh

echo "== sdk: host unit tests"
cargo test --release -p imgbind-sdk

echo "== sdk: wasm tests (wasm-bindgen-test under Node)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --release --target wasm32-unknown-unknown -p imgbind-sdk

echo "== sdk: ESM API tests (node --test; Node and workerd via Miniflare)"
node --test sdk/js/test/api.test.mjs sdk/js/test/workerd.test.mjs

echo "== sdk: types assignable to Cloudflare's ImagesBinding (tsc)"
tsc -p sdk/js/test/tsconfig.json
