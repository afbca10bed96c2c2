#!/usr/bin/env bash
# README command 1: set up, build, then run the whole system locally:
#   target/release/imgbind serve --unix .tmp/imgbind.sock --listen 127.0.0.1:9100
#   wrangler dev --local on http://127.0.0.1:8787 with the example Worker (worker-example/),
#   which reaches the backend through IMGBIND_URL (wrangler.toml [vars]).
# Ctrl-C stops both. Extra arguments go to `wrangler dev`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

scripts/setup.sh
scripts/build.sh

mkdir -p .tmp
socket="$IMGBIND_ROOT/.tmp/imgbind.sock"
backend_pid=""
wrangler_pid=""

stop_all() {
  trap - EXIT INT TERM
  # Each by its own pid: killing an `npx` wrapper would leave wrangler (and workerd) running.
  [[ -n "$wrangler_pid" ]] && kill "$wrangler_pid" 2>/dev/null || true
  [[ -n "$backend_pid" ]] && kill "$backend_pid" 2>/dev/null || true
  [[ -n "$wrangler_pid" ]] && wait "$wrangler_pid" 2>/dev/null || true
  [[ -n "$backend_pid" ]] && wait "$backend_pid" 2>/dev/null || true
  rm -f "$socket"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

target/release/imgbind serve --unix "$socket" --listen 127.0.0.1:9100 &
backend_pid=$!

# Wait (bounded) until the backend answers.
for _ in $(seq 1 100); do
  if curl -fsS --max-time 1 http://127.0.0.1:9100/healthz >/dev/null 2>&1; then break; fi
  if ! kill -0 "$backend_pid" 2>/dev/null; then log run "backend exited"; exit 1; fi
  sleep 0.1
done
curl -fsS --max-time 1 http://127.0.0.1:9100/healthz >/dev/null || { log run "backend did not come up"; exit 1; }
log run "backend up: unix:$socket and http://127.0.0.1:9100 (pid $backend_pid)"

# The URL interface and the playground read source images from the local R2 bucket.
WRANGLER_SEND_METRICS=false node_modules/.bin/node scripts/seed-r2.mjs "$IMGBIND_CORPUS" ||
  log run "could not seed the local R2 bucket (URL interface and playground will find no images)"

cat >&2 <<MSG
[run] starting wrangler dev on http://127.0.0.1:8787. Try, from $IMGBIND_ROOT:
  curl --data-binary @../shared/corpus/photo-4mp-twowings.jpg 'http://127.0.0.1:8787/transform?width=800&format=image/webp' -o out.webp
  curl --data-binary @../shared/corpus/photo-4mp-twowings.jpg http://127.0.0.1:8787/info
  curl -F image=@../shared/corpus/photo-4mp-twowings.jpg -F overlay=@../shared/corpus/overlay-logo-337x330.png \\
       'http://127.0.0.1:8787/composite?bottom=20&right=20&overlayWidth=200&format=image/png' -o out.png
  curl 'http://127.0.0.1:8787/cdn-cgi/image/width=800,format=webp/composed/sunset-poster.png' -o poster.webp
  open http://127.0.0.1:8787/playground
[run] Ctrl-C stops wrangler and the backend.
MSG

# Started directly (not through npx) so that $! is wrangler itself, which passes SIGTERM on to its
# worker process; under Node 22 from node_modules (wrangler refuses the system's Node 20).
WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  node_modules/.bin/node node_modules/wrangler/bin/wrangler.js \
  dev --local --ip 127.0.0.1 --port 8787 "$@" <&0 &
wrangler_pid=$!
wait "$wrangler_pid"
