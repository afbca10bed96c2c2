#!/usr/bin/env bash
# Load test (issue #6): the real `imgbind` binary on a Unix socket, 64 concurrent clients for
# [seconds] (default 120) sending a seeded mix of good and hostile requests, with bursts of 24
# concurrent 100 MP requests. Fails if a good request gets anything but a complete, correct image
# or a coded 503 (9522), if a hostile request gets the wrong code, if peak RSS passes 3 GB, or if
# RSS stays more than 100 MB above the warmed-up baseline afterwards. Prints a `LOAD |` line.
#   scripts/load-test.sh        120 s
#   scripts/load-test.sh 300
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

export IMGBIND_LOAD_SECS="${1:-120}"
log load-test "${IMGBIND_LOAD_SECS}s at concurrency 64 (cargo test --release, backend/tests/load.rs)"
exec cargo test --release -p imgbind-backend --test load -- --ignored --exact load --nocapture
