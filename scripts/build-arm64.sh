#!/usr/bin/env bash
# Cross-builds the backend for Linux arm64 (aarch64, glibc) on this x86-64 machine:
#   target/arm64/aarch64-unknown-linux-gnu/release/imgbind
# in its own target directory (target/arm64): cargo holds a lock on the host build directory
# (target/release) for the whole of a build, build scripts included, so a cross-build sharing it
# could not run beside the native one. scripts/test.sh runs it in the background, at idle priority.
# with Debian's cross toolchain (gcc/g++-aarch64-linux-gnu, installed here if missing) and rustup's
# aarch64-unknown-linux-gnu target. The C codecs (libjpeg-turbo, libwebp, libaom/libavif, SQLite)
# are built by their crates' build scripts with that compiler; libaom and libjpeg-turbo use their
# NEON code paths. About 5 minutes on 2 cores from a clean target. Used by
# `scripts/pack.sh --all-platforms` and `scripts/test-arm64.sh`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
if ((${#need[@]})); then
  log build-arm64 "apt-get install ${need[*]}"
  sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export PKG_CONFIG_ALLOW_CROSS=1
export CARGO_TARGET_DIR="$IMGBIND_ROOT/target/arm64"
log build-arm64 "cargo build --release --target aarch64-unknown-linux-gnu -p imgbind-backend"
cargo build --release --locked --target aarch64-unknown-linux-gnu -p imgbind-backend
