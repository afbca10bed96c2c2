#!/usr/bin/env bash
# Writes every npm tarball to target/npm/, from a release build:
#   imgbind-<version>.tgz                  the main package: SDK (JS + wasm), Miniflare plugin, the
#                                          `imgbind` command (cli/), optionalDependencies on each
#                                          platform package below
#   imgbind-linux-x64-gnu-<version>.tgz    @imgbind/linux-x64-gnu: the stripped backend binary
# Users and tests install these offline: `npm install ./target/npm/*.tgz`.
#   scripts/pack.sh             builds the backend (cargo build --release -p imgbind-backend) first
#   scripts/pack.sh --no-build  packs target/release/imgbind as it is (test.sh, right after build.sh)
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

case "${1:-}" in
  "")
    log pack "cargo build --release -p imgbind-backend"
    cargo build --release -p imgbind-backend
    [[ -f sdk/dist/imgbind_sdk_bg.wasm ]] || scripts/build-sdk.sh
    ;;
  --no-build)
    for built in target/release/imgbind sdk/dist/imgbind_sdk_bg.wasm; do
      [[ -f "$built" ]] || { log pack "$built is missing: run scripts/build.sh (or scripts/pack.sh without --no-build)"; exit 1; }
    done
    ;;
  *) log pack "usage: scripts/pack.sh [--no-build]"; exit 2 ;;
esac

out=target/npm
rm -rf "$out"
mkdir -p "$out/stage"

# --- the platform package: the template in npm/ plus the stripped binary ------------------------
platform=linux-x64-gnu
stage="$out/stage/$platform"
cp -r "npm/$platform" "$stage"
mkdir -p "$stage/bin"
strip -o "$stage/bin/imgbind" target/release/imgbind
chmod 0755 "$stage/bin/imgbind"
"$node" -e '
  const fs = require("fs"), [file, version] = process.argv.slice(1);
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  manifest.version = version;
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
' "$stage/package.json" "$version"
platform_name="$("$node" -p "require('./$stage/package.json').name")"

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
  const fs = require("fs"), [file, platformName, version] = process.argv.slice(1);
  const manifest = JSON.parse(fs.readFileSync("package.json", "utf8"));
  delete manifest.devDependencies;
  delete manifest.scripts;
  manifest.optionalDependencies = { [platformName]: version };
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
' "$main_stage/package.json" "$platform_name" "$version"

for dir in "$stage" "$main_stage"; do
  npm pack --ignore-scripts --loglevel=error --pack-destination "$out" "./$dir" >/dev/null
done
rm -rf "$out/stage"
log pack "wrote $(cd "$out" && ls *.tgz | tr '\n' ' ')"
