#!/usr/bin/env bash
# Installs what this machine lacks to build and test imgbind: cmake + nasm (the JPEG/WebP codec
# crates build vendored C), the wasm32 Rust target, wasm-bindgen-cli at the exact version in
# Cargo.lock, the npm devDependencies (wrangler, miniflare, workerd, binaryen, Node 22), runc,
# PostgreSQL, qemu-user and the aarch64 cross toolchain (Debian), and kubernetes-validate and
# moto's S3 server from PyPI in a venv (target/py).
# Idempotent: each step is skipped when its result is already there, so a warm run takes a second.
# Reaches only Debian's, crates.io's, npm's and PyPI's registries. Run as root (apt-get) on Debian 12.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

# --- Debian packages --------------------------------------------------------------------------
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx) # reverse proxy in backend/tests/delivery_matrix.rs
[[ -x /usr/sbin/runc ]] || command -v runc >/dev/null 2>&1 || missing+=(runc) # scripts/test-container.sh runs the image's root filesystem
command -v ip >/dev/null 2>&1 || missing+=(iproute2) # its network namespace
[[ -x /usr/bin/chromium ]] || missing+=(chromium) # headless browser for tests/playground.test.js (driven by playwright-core)
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql) # the scale-out hosted store's tests (backend/tests/hosted.rs)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static) # scripts/test-arm64.sh runs the arm64 binary
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross) # scripts/build-arm64.sh
if ((${#missing[@]})); then
  sudo=""
  [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
  log setup "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Rust: the wasm target for the SDK --------------------------------------------------------
for target in wasm32-unknown-unknown aarch64-unknown-linux-gnu; do
  if ! rustup target list --installed | grep -qx "$target"; then
    log setup "rustup target add $target"
    rustup target add "$target"
  fi
done

# --- wasm-bindgen-cli: must match the wasm-bindgen crate in Cargo.lock exactly -----------------
wanted_bindgen="$(awk '
  $0 == "name = \"wasm-bindgen\"" { found = 1; next }
  found && /^version = / { gsub(/version = |"/, ""); print; exit }
' Cargo.lock)"
if [[ -n "$wanted_bindgen" ]]; then
  have_bindgen="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [[ "$have_bindgen" != "$wanted_bindgen" ]]; then
    log setup "cargo install wasm-bindgen-cli --version $wanted_bindgen (have: ${have_bindgen:-none})"
    # Deliberately without --locked (a project decision): cargo resolves the CLI's dependencies afresh.
    cargo install wasm-bindgen-cli --version "$wanted_bindgen"
  fi
else
  log setup "Cargo.lock has no wasm-bindgen yet; skipping wasm-bindgen-cli"
fi

# --- worker-build: builds the Rust example Worker (worker-example/rust/) -----------------------
# Pinned to the `worker` crate's line (0.8). scripts/build-rust-worker.sh points it at the
# wasm-bindgen above and npm's wasm-opt and esbuild, so it never downloads tools itself.
wanted_worker_build=0.8.7
if [[ "$(worker-build --version 2>/dev/null || true)" != "$wanted_worker_build" ]]; then
  log setup "cargo install worker-build --version $wanted_worker_build --locked"
  cargo install worker-build --version "$wanted_worker_build" --locked
fi

# --- npm devDependencies -----------------------------------------------------------------------
# `npm ci` wipes node_modules, so run it only when package-lock.json changed since the last one.
stamp="node_modules/.imgbind-setup-lock.sha256"
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" || ! -x node_modules/.bin/wrangler ]]; then
  log setup "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$lock_hash" >"$stamp"
fi

# --- kubernetes-validate (PyPI; carries its schemas): scripts/test-k8s.sh checks deploy/k8s -----
wanted_kv=1.37.0
if [[ "$(target/py/bin/kubernetes-validate --version 2>/dev/null | awk '{print $NF}' || true)" != "$wanted_kv" ]]; then
  log setup "pip install kubernetes-validate==$wanted_kv (into target/py)"
  python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "kubernetes-validate==$wanted_kv"
fi

# --- moto's S3 server (PyPI): the S3-compatible store in backend/tests/hosted.rs ---------------
wanted_moto=5.1.22
if [[ "$(target/py/bin/pip show moto 2>/dev/null | awk '/^Version:/{print $2}' || true)" != "$wanted_moto" ||
      ! -x target/py/bin/moto_server ]]; then
  log setup "pip install moto[server]==$wanted_moto (into target/py)"
  [[ -x target/py/bin/pip ]] || python3 -m venv target/py
  target/py/bin/pip install --quiet --disable-pip-version-check "moto[server]==$wanted_moto"
fi

log setup "ok"
