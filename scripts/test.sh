#!/usr/bin/env bash
# README command 2 (and all that .ci/run does): set up, build, lint, and run every test:
#   cargo fmt --check; clippy -D warnings (native workspace, and the SDK on wasm32);
#   cargo test (release profile, so the codecs compile once); scripts/test-sdk.sh;
#   scripts/pack.sh (the npm tarballs); npm test (the example Worker in Miniflare, Cloudflare's own
#   client in workerd, the tarballs installed as a new user does).
#   scripts/test-container.sh (deploy/Containerfile's root filesystem under runc);
#   scripts/test-k8s.sh (deploy/k8s rendered, validated, checked against `imgbind serve --help`);
#   scripts/load-test.sh 120 (64 concurrent clients, good + hostile requests, RSS back to baseline);
#   scripts/test-replicas.sh; scripts/test-arm64.sh --no-build (the arm64 package, cross-built
#   beside the native build, run under qemu-user).
# Setup and build failures stop the run at once; after that every step runs, a summary is
# printed, and the exit status is non-zero if any step failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

started=$SECONDS
names=()
results=()

# step NAME COMMAND...: run one step, record PASS/FAIL and its duration.
step() {
  local name="$1"
  shift
  local t0=$SECONDS status
  printf '\n===== %s: %s\n' "$name" "$*" >&2
  if "$@"; then status=PASS; else status=FAIL; fi
  names+=("$name")
  results+=("$status $((SECONDS - t0))s")
  printf '===== %s: %s (%ss)\n' "$name" "$status" "$((SECONDS - t0))" >&2
  [[ "$status" == PASS ]]
}

summary() {
  local failed=0 i
  printf '\n===== imgbind test summary (%ss in all)\n' "$((SECONDS - started))" >&2
  for i in "${!names[@]}"; do
    printf '  %-8s %-28s %s\n' "${results[$i]%% *}" "${names[$i]}" "${results[$i]#* }" >&2
    [[ "${results[$i]%% *}" == PASS ]] || failed=$((failed + 1))
  done
  if ((failed)); then
    printf '===== %d step(s) FAILED\n' "$failed" >&2
  else
    printf '===== all steps passed\n' >&2
  fi
  # The last line, in the plain form CI tools read.
  printf 'steps: %d passed, %d failed\n' "$((${#names[@]} - failed))" "$failed"
  ((failed == 0))
}

if [[ ! -d "$IMGBIND_CORPUS" ]]; then
  log test "corpus not found at $IMGBIND_CORPUS (expected ../shared/corpus beside the clone, or set IMGBIND_CORPUS)"
  exit 1
fi

# Without these nothing else can run.
step setup scripts/setup.sh || { summary; exit 1; }

# The arm64 cross-build (about 7 minutes of both cores alone) runs in the background at idle
# priority, in its own target directory, from here until just before the load test: it takes only
# the CPU time the steps leave unused (measured: the build leaves about 10 % of two cores idle,
# cargo test about 70 %, npm test about 45 %), and it is finished before the first step that
# measures the machine under load. Job control (`set -m`) gives it its own process group, so the
# exit trap stops it whole, in this session: the kernel ranks CPU shares per session (autogroups),
# and SCHED_IDLE / nice only rank it below the tests within one. Its log is printed when waited for.
mkdir -p target
arm64_log=target/arm64-build.log
idle=()
chrt --idle 0 true 2>/dev/null && idle+=(chrt --idle 0)
set -m
"${idle[@]}" nice -n 19 scripts/build-arm64.sh >"$arm64_log" 2>&1 &
arm64_pid=$!
set +m
trap 'kill -- -"$arm64_pid" 2>/dev/null || true' EXIT
wait_arm64() {
  local rc=0
  wait "$arm64_pid" || rc=$?
  cat "$arm64_log" >&2
  return "$rc"
}

step build scripts/build.sh --with-tests || { summary; exit 1; }
step "cargo fmt" cargo fmt --all --check || true
step "clippy (native)" cargo clippy --release --workspace --exclude imgbind-sdk --all-targets -- -D warnings || true
step "clippy (sdk, wasm32)" cargo clippy --release -p imgbind-sdk --target wasm32-unknown-unknown --all-targets -- -D warnings || true
step "rust worker (fmt, clippy)" scripts/build-rust-worker.sh --lint || true
step "cargo test" cargo test --release --workspace --exclude imgbind-sdk || true
if [[ -x scripts/test-sdk.sh ]]; then
  step "sdk tests" scripts/test-sdk.sh || true
fi
step "npm pack (target/npm)" scripts/pack.sh --no-build || true
# Each crate packages as crates.io would take it (in dependency order; nothing is published).
# --no-verify: verifying rebuilds every codec from the .crate files (docs/NPM.md has the figure).
step "cargo package" cargo package --workspace --no-verify || true
step "npm test (workerd)" npm test || true
step "container (runc, memory limit)" scripts/test-container.sh || true
step "kubernetes manifests (validate, match --help)" scripts/test-k8s.sh || true
step "arm64 cross-build (background, idle priority)" wait_arm64 || true
step "load test (64 clients, 120 s)" scripts/load-test.sh 120 || true
step "replicas behind nginx (kill, restart, stall, scale)" scripts/test-replicas.sh || true
step "arm64 package (qemu-user)" scripts/test-arm64.sh --no-build || true

summary
