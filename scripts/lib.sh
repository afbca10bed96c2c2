# Shared by the scripts in this folder; sourced, not run.
# Puts the tools the scripts use on PATH and gives them a common way to log.

# rustup's shims live here; a non-login shell (CI) may not have them on PATH yet.
export PATH="$HOME/.cargo/bin:$PATH"

# Repo root, whatever the caller's working directory.
IMGBIND_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export IMGBIND_ROOT

# The public corpus lives beside the clone (../shared/corpus), unless IMGBIND_CORPUS says otherwise.
export IMGBIND_CORPUS="${IMGBIND_CORPUS:-$IMGBIND_ROOT/../shared/corpus}"

# log SCRIPT MESSAGE...: one prefixed line on stderr.
log() {
  local who="$1"
  shift
  printf '[%s] %s\n' "$who" "$*" >&2
}
