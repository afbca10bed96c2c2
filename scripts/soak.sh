#!/usr/bin/env bash
# Delivery soak (issue #4): IMGBIND_SOAK requests (default 10000) from IMGBIND_SOAK_CONCURRENCY
# slow readers (default 16) over the Unix socket and TCP, mixing keep-alive reuse, Connection:
# close, half-close, early errors to uploads in flight, and 2.6 MB / 16.4 MB answers. Every body
# is compared byte for byte; any truncation fails the run. Prints a `SOAK |` summary line.
#
#   scripts/soak.sh                 10 000 requests
#   IMGBIND_SOAK=50000 scripts/soak.sh
#
# Slow-reader knobs (defaults 4096, 32768, 1000): IMGBIND_SLOW_RCVBUF, IMGBIND_SLOW_READ,
# IMGBIND_SLOW_PAUSE_US.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

export IMGBIND_SOAK="${IMGBIND_SOAK:-10000}"
log soak "$IMGBIND_SOAK requests, ${IMGBIND_SOAK_CONCURRENCY:-16} clients (cargo test --release, delivery_matrix soak)"
exec cargo test --release -p imgbind-backend --test delivery_matrix -- --ignored --exact soak --nocapture
