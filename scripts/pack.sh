#!/usr/bin/env bash
# Writes every npm tarball to target/npm/, from a release build:
#   imgbind-<version>.tgz                  the main package: SDK (JS + wasm), Miniflare plugin, the
#                                          `imgbind` command (cli/), optionalDependencies on each
#                                          platform package below
#   imgbind-linux-x64-gnu-<version>.tgz    @imgbind/linux-x64-gnu: the stripped backend binary
#   imgbind-linux-arm64-gnu-<version>.tgz  @imgbind/linux-arm64-gnu (with --all-platforms): the
#                                          backend cross-built for aarch64 (scripts/build-arm64.sh)
# (IMGBIND_PACK_OUT=DIR writes them there instead.)
# Users and tests install these offline: `npm install ./target/npm/*.tgz`. The main package lists
# as optionalDependencies exactly the platform packages packed in the same run.
#   scripts/pack.sh                 builds the backend (cargo build --release -p imgbind-backend) first
#   scripts/pack.sh --no-build      packs target/release/imgbind as it is (test.sh, right after build.sh)
#   scripts/pack.sh --all-platforms also cross-builds and packs linux-arm64-gnu (a release)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

node=node_modules/.bin/node
[[ -x "$node" ]] || node=node
version="$("$node" -p 'require("./package.json").version')"
cargo_version="$(awk '/^\[workspace.package\]/{w=1} w && /^version = /{gsub(/version = |"/,""); print; exit}' Cargo.toml)"
if [[ "$version" != "$cargo_version" ]]; then
  log pack "package.json version $version differs from the Cargo workspace version $cargo_version"
  exit 1
fi
if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  log pack "the platform package is built for Linux x86-64; this is $(uname -sm)"
  exit 1
fi

# Each platform package: its npm/ template, the binary, and the strip that reads it.
platforms=(linux-x64-gnu)
declare -A binary=([linux-x64-gnu]=target/release/imgbind
                   [linux-arm64-gnu]=target/arm64/aarch64-unknown-linux-gnu/release/imgbind)
declare -A stripper=([linux-x64-gnu]=strip [linux-arm64-gnu]=aarch64-linux-gnu-strip)
build=yes
for arg in "$@"; do
  case "$arg" in
    --no-build) build=no ;;
    --all-platforms) platforms+=(linux-arm64-gnu) ;;
    *) log pack "usage: scripts/pack.sh [--no-build] [--all-platforms]"; exit 2 ;;
  esac
done
if [[ $build == yes ]]; then
  log pack "cargo build --release -p imgbind-backend"
  cargo build --release -p imgbind-backend
  [[ -f sdk/dist/imgbind_sdk_bg.wasm ]] || scripts/build-sdk.sh
  if [[ " ${platforms[*]} " == *" linux-arm64-gnu "* ]]; then
    scripts/build-arm64.sh
  fi
fi
required=(sdk/dist/imgbind_sdk_bg.wasm)
for platform in "${platforms[@]}"; do required+=("${binary[$platform]}"); done
for path in "${required[@]}"; do
  [[ -f "$path" ]] || { log pack "$path is missing: run scripts/build.sh (or scripts/pack.sh without --no-build)"; exit 1; }
done

out="${IMGBIND_PACK_OUT:-target/npm}"
rm -rf "$out"
mkdir -p "$out/stage"

# --- the platform packages: each template in npm/ plus its stripped binary ----------------------
platform_names=()
for platform in "${platforms[@]}"; do
  stage="$out/stage/$platform"
  cp -r "npm/$platform" "$stage"
  mkdir -p "$stage/bin"
  "${stripper[$platform]}" -o "$stage/bin/imgbind" "${binary[$platform]}"
  chmod 0755 "$stage/bin/imgbind"
  "$node" -e '
    const fs = require("fs"), [file, version] = process.argv.slice(1);
    const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
    manifest.version = version;
    fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
  ' "$stage/package.json" "$version"
  platform_names+=("$("$node" -p "require('./$stage/package.json').name")")
done

# --- the main package: the repo's own files (package.json "files"), with the platform packages ----
# as optionalDependencies and without the repo's devDependencies and scripts.
main_stage="$out/stage/imgbind"
mkdir -p "$main_stage"
npm pack --dry-run --json --ignore-scripts 2>/dev/null |
  "$node" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const f of JSON.parse(s)[0].files)console.log(f.path)})' |
  while IFS= read -r file; do
    mkdir -p "$main_stage/$(dirname "$file")"
    cp -p "$file" "$main_stage/$file"
  done
"$node" -e '
  const fs = require("fs"), [file, version, ...platformNames] = process.argv.slice(1);
  const manifest = JSON.parse(fs.readFileSync("package.json", "utf8"));
  delete manifest.devDependencies;
  delete manifest.scripts;
  manifest.optionalDependencies = Object.fromEntries(platformNames.map((name) => [name, version]));
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
' "$main_stage/package.json" "$version" "${platform_names[@]}"

for platform in "${platforms[@]}"; do
  npm pack --ignore-scripts --loglevel=error --pack-destination "$out" "./$out/stage/$platform" >/dev/null
done
npm pack --ignore-scripts --loglevel=error --pack-destination "$out" "./$main_stage" >/dev/null
rm -rf "$out/stage"
log pack "wrote $(cd "$out" && ls *.tgz | tr '\n' ' ')"
