#!/usr/bin/env bash
# The arm64 package, end to end on this x86-64 machine: cross-build (scripts/build-arm64.sh), pack
# (scripts/pack.sh --all-platforms), then check @imgbind/linux-arm64-gnu as npm would install it on
# an arm64 machine (`npm install --cpu=arm64` in a fresh folder) and run its binary under
# qemu-user (Debian's qemu-user-static, with the cross glibc as its root):
#   - the tarball's os/cpu/libc, the main package's optionalDependencies;
#   - an aarch64 ELF needing only libc, libm, libgcc_s and the loader, with GLIBC_ symbols ≤ 2.35;
#   - `imgbind --version`; `imgbind serve` answering /healthz, and /transform to JPEG, PNG, WebP,
#     AVIF and GIF whose results its own /info reads back at the asked-for size.
#   scripts/test-arm64.sh             cross-builds first
#   scripts/test-arm64.sh --no-build  tests the binary scripts/build-arm64.sh already built
#                                     (scripts/test.sh builds it in the background first)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

command -v qemu-aarch64-static >/dev/null || {
  log test-arm64 "apt-get install qemu-user-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >/dev/null
}
case "${1:-}" in
  "") scripts/build-arm64.sh ;;
  --no-build) ;;
  *) log test-arm64 "usage: scripts/test-arm64.sh [--no-build]"; exit 2 ;;
esac
IMGBIND_PACK_OUT=target/npm-all-platforms scripts/pack.sh --no-build --all-platforms

node=node_modules/.bin/node
version="$("$node" -p 'require("./package.json").version')"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { log test-arm64 "FAIL: $*"; exit 1; }

# Installed from the tarballs in a fresh folder. npm refuses a package for another CPU given by
# path (EBADPLATFORM) even with --cpu=arm64, so --force; that npm on arm64 picks this package (and
# skips it elsewhere) follows from its os/cpu/libc, checked below.
(cd "$work" && npm init -y >/dev/null && npm install --offline --force --no-audit --no-fund \
  --ignore-scripts --loglevel=error "$IMGBIND_ROOT"/target/npm-all-platforms/*.tgz >/dev/null)
pkg="$work/node_modules/@imgbind/linux-arm64-gnu"
[[ -x "$pkg/bin/imgbind" ]] || fail "@imgbind/linux-arm64-gnu/bin/imgbind was not installed"
"$node" -e '
  const [pkg, main, version] = process.argv.slice(1);
  const p = require(pkg + "/package.json"), m = require(main + "/package.json");
  const want = {os: ["linux"], cpu: ["arm64"], libc: ["glibc"]};
  for (const [k, v] of Object.entries(want)) if (JSON.stringify(p[k]) !== JSON.stringify(v)) throw new Error(`${k}: ${p[k]}`);
  if (m.optionalDependencies["@imgbind/linux-arm64-gnu"] !== version) throw new Error("not an optionalDependency");
' "$pkg" "$work/node_modules/imgbind" "$version" || fail "package metadata"

bin="$pkg/bin/imgbind"
machine="$(aarch64-linux-gnu-readelf -h "$bin" | sed -n 's/^ *Machine: *//p')"
[[ $machine == AArch64 ]] || fail "not an aarch64 ELF: machine $machine"
needed="$(aarch64-linux-gnu-readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort | tr '\n' ' ')"
for lib in $needed; do
  case "$lib" in libc.so.6|libm.so.6|libgcc_s.so.1|ld-linux-aarch64.so.1) ;; *) fail "needs $lib" ;; esac
done
glibc="$(aarch64-linux-gnu-objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n -u | tail -1)"
[[ "$(printf '%s\n' "$glibc" GLIBC_2.35 | sort -V | tail -1)" == GLIBC_2.35 ]] || fail "needs $glibc (> 2.35)"
log test-arm64 "aarch64 ELF; needs $needed; highest symbol $glibc"

run() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" "$@"; }
[[ "$(run --version)" == "imgbind $version" ]] || fail "--version: $(run --version)"
sock="$work/imgbind.sock"
qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" serve --unix "$sock" --log-level warn \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do [[ -S "$sock" ]] && break; sleep 0.1; done
[[ "$(curl -s --unix-socket "$sock" http://x/healthz)" == ok ]] || fail "/healthz"
photo="$IMGBIND_CORPUS/$(ls "$IMGBIND_CORPUS" | grep -i '\.jpe\?g$' | head -1)"
for format in image/jpeg image/png image/webp image/avif image/gif; do
  status="$(curl -s -o "$work/out" -w '%{http_code}' --unix-socket "$sock" \
    -F "image=@$photo;filename=image" -F 'transforms=[{"imageIndex":0,"width":240}]' \
    -F "output_format=$format" http://x/transform)"
  [[ $status == 200 ]] || fail "$format: HTTP $status: $(head -c 200 "$work/out")"
  info="$(curl -s --unix-socket "$sock" -F "image=@$work/out;filename=image" http://x/info)"
  "$node" -e '
    const [info, format] = process.argv.slice(1), i = JSON.parse(info);
    if (i.format !== format || i.width !== 240) throw new Error(info);
  ' "$info" "$format" || fail "$format: /info says $info"
  log test-arm64 "$format: 200, $(stat -c %s "$work/out") bytes, $info"
done
log test-arm64 "ok: @imgbind/linux-arm64-gnu runs (under qemu-user) and encodes every format"
