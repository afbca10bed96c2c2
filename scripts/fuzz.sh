#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a given time each, one after another, and prints one
# `FUZZ |` line per target (executions, corpus size, findings):
#   scripts/fuzz.sh                         60 s for every target
#   scripts/fuzz.sh 600 decode_png options  10 min for two targets
# Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh installs neither: fuzzing is a
# developer tool, not part of the test command). The corpus grows in fuzz/corpus/<target>/
# (not committed); it starts from fuzz/seeds/ and fuzz/regressions/<target>/. A crash, hang or
# out-of-memory input is written to fuzz/artifacts/<target>/: reduce it, fix the code that owns it,
# and keep it in fuzz/regressions/<target>/ so `cargo test` replays it (engine/tests/hostile.rs,
# backend/tests/hostile.rs).
# FUZZ_RSS_MB (default 2048) and FUZZ_TIMEOUT (per input, default 10 s) are libFuzzer's limits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT/fuzz"

seconds="${1:-60}"
shift || true
if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The seeds each target starts from (besides its regressions).
seeds_for() {
  case "$1" in
    decode_jpeg) echo seeds/jpeg ;;
    decode_png) echo seeds/png ;;
    decode_gif) echo seeds/gif ;;
    decode_webp) echo seeds/webp ;;
    engine) echo seeds/jpeg seeds/png seeds/gif seeds/webp ;;
    *) echo "seeds/$1" ;;
  esac
}

log fuzz "building the fuzz targets"
cargo +nightly fuzz build -O

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
  logfile="artifacts/$target/last-run.log"
  log fuzz "$target for ${seconds}s (log: fuzz/$logfile)"
  # shellcheck disable=SC2046
  if cargo +nightly fuzz run -O "$target" "corpus/$target" "regressions/$target" $(seeds_for "$target") -- \
    -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
    -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$logfile" 2>&1; then
    result=clean
  else
    result="FINDING (see fuzz/$logfile and fuzz/artifacts/$target/)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logfile" | grep -o '[0-9]*$' || echo '?')
  corpus=$(find "corpus/$target" -type f | wc -l)
  printf 'FUZZ | %-12s | %ss | %s execs | corpus %s files | %s\n' "$target" "$seconds" "$execs" "$corpus" "$result"
done
exit "$status"
