#!/usr/bin/env bash
# Replicas behind nginx (issue #14): 3 `imgbind serve` replicas on loopback behind the shipped
# deploy/nginx/imgbind.conf (ports rewritten to free ones), driven by scripts/replica-load.py
# (8 keep-alive clients, a 4 MP JPEG -> 400 px WebP each). Shows, with counts:
#   kill     SIGKILL of one replica under load           -> 0 failed
#   rolling  SIGTERM restart of each replica in turn     -> 0 failed
#   stall    one replica SIGSTOPped for 12 s under load  -> 0 failed, and the p99 it costs
#   scale    throughput with 1, 2, 3 replicas, each held to 0.5 CPU by a cgroup v1 cpu quota
# Prints `REPLICAS |` lines and fails on any failed request. Needs root (cgroups), nginx, python3,
# curl and a release build (scripts/build.sh). Bounded: about 2 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

BIN="$IMGBIND_ROOT/target/release/imgbind"
NGINX="${IMGBIND_NGINX:-/usr/sbin/nginx}"
[[ -x "$BIN" ]] || { log replicas "no $BIN: run scripts/build.sh"; exit 1; }
[[ -x "$NGINX" ]] || { log replicas "no nginx: run scripts/setup.sh"; exit 1; }
CPU_QUOTA_US=50000 # per replica, of a 100000 us period: half a core
FAIL_TIMEOUT=10    # deploy/nginx/imgbind.conf's fail_timeout
started=$SECONDS
work="$(mktemp -d)"
cg="/sys/fs/cgroup/cpu/imgbind-replicas-$$"
pids=()
nginx_pid=""

cleanup() {
  local pid
  # nginx: QUIT lets the master stop its workers (a KILLed master leaves them orphaned).
  [[ -n "$nginx_pid" ]] && kill -QUIT "$nginx_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    [[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ -d "$cg" ]]; then
    for dir in "$cg"/r*; do [[ -d "$dir" ]] && rmdir "$dir" 2>/dev/null || true; done
    rmdir "$cg" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nginx_port="$(free_port)"
ports=("$(free_port)" "$(free_port)" "$(free_port)")

# --- the request body (workerd's multipart shape) --------------------------------------------
boundary="imgbindreplicas0123456789"
{
  printf -- '--%s\r\ncontent-disposition: form-data; name="image"; filename="image"\r\n\r\n' "$boundary"
  cat "$IMGBIND_CORPUS/photo-4mp-twowings.jpg"
  printf -- '\r\n--%s\r\ncontent-disposition: form-data; name="transforms"\r\n\r\n' "$boundary"
  printf '[{"imageIndex":0,"width":400,"fit":"scale-down"}]'
  printf -- '\r\n--%s\r\ncontent-disposition: form-data; name="output_format"\r\n\r\nimage/webp\r\n--%s--\r\n' "$boundary" "$boundary"
} >"$work/body"

# --- cgroups: one cpu cgroup per replica ------------------------------------------------------
mkdir "$cg"
for i in 0 1 2; do
  mkdir "$cg/r$i"
  echo 100000 >"$cg/r$i/cpu.cfs_period_us"
done
cap() { # cap I QUOTA_US (-1 = none)
  echo "$2" >"$cg/r$1/cpu.cfs_quota_us"
}

# --- replicas ---------------------------------------------------------------------------------
start_replica() { # start_replica I: in its cgroup (so available_parallelism sees the quota)
  local i=$1
  (
    echo "$BASHPID" >"$cg/r$i/cgroup.procs"
    exec "$BIN" serve --listen "127.0.0.1:${ports[$i]}" --shutdown-delay 1s --log-level warn
  ) 2>>"$work/replica-$i.log" &
  pids[$i]=$!
  local t0=$SECONDS
  until curl -fsS -o /dev/null "http://127.0.0.1:${ports[$i]}/readyz" 2>/dev/null; do
    ((SECONDS - t0 < 15)) || { log replicas "replica $i did not start"; cat "$work/replica-$i.log" >&2; exit 1; }
    sleep 0.05
  done
}

# --- nginx: the shipped config, ports rewritten, first N servers ------------------------------
nginx_conf() { # nginx_conf N
  local n=$1 user=""
  [[ "$(id -u)" -eq 0 ]] && user="user root root;"
  awk -v n="$n" -v p0="${ports[0]}" -v p1="${ports[1]}" -v p2="${ports[2]}" -v np="$nginx_port" '
    /^ *server 127\.0\.0\.1:879[1-3] / {
      k++; if (k > n) next
      port = (k == 1 ? p0 : (k == 2 ? p1 : p2))
      sub(/127\.0\.0\.1:879[1-3]/, "127.0.0.1:" port)
    }
    /^ *listen 127\.0\.0\.1:8790;/ { sub(/8790/, np) }
    { print }' deploy/nginx/imgbind.conf >"$work/imgbind.conf"
  cat >"$work/nginx.conf" <<CONF
$user
worker_processes 1;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path $work/client_body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    include $work/imgbind.conf;
}
CONF
}
nginx_conf 3
"$NGINX" -t -q -p "$work" -c "$work/nginx.conf"
"$NGINX" -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for i in 0 1 2; do cap "$i" "$CPU_QUOTA_US"; start_replica "$i"; done
t0=$SECONDS
until curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port/readyz" 2>/dev/null; do
  ((SECONDS - t0 < 10)) || { log replicas "nginx did not start"; cat "$work/nginx-error.log" >&2; exit 1; }
  sleep 0.05
done

load() { # load SECONDS CONCURRENCY > json
  python3 scripts/replica-load.py 127.0.0.1 "$nginx_port" "$work/body" "$boundary" "$1" "$2"
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
failures=0
report() { # report NAME JSON
  log replicas "REPLICAS | $1 | $2"
  failures=$((failures + $(field "$2" failed)))
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
log replicas "load average before: $(loadavg) on $(nproc) cores"

# --- baseline (3 replicas, no faults) --------------------------------------------------------
report baseline "$(load 6 8)"

# --- SIGKILL one replica under load ---------------------------------------------------------
load 8 8 >"$work/kill.json" &
lp=$!
sleep 2
kill -KILL "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
wait $lp
report "kill (SIGKILL replica 0 at 2 s)" "$(cat "$work/kill.json")"
start_replica 0
sleep "$FAIL_TIMEOUT" # nginx benched replica 0 for fail_timeout; let it return before the next phase

# --- rolling restart by SIGTERM -------------------------------------------------------------
load $((3 * (FAIL_TIMEOUT + 3) + 2)) 8 >"$work/rolling.json" &
lp=$!
sleep 2
for i in 0 1 2; do
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}" || { log replicas "replica $i exited non-zero after SIGTERM"; failures=$((failures + 1)); }
  start_replica "$i"
  sleep "$FAIL_TIMEOUT"
done
wait $lp
report "rolling restart (SIGTERM each, one per ${FAIL_TIMEOUT}s)" "$(cat "$work/rolling.json")"

# --- SIGSTOP one replica under load ---------------------------------------------------------
load 20 8 >"$work/stall.json" &
lp=$!
sleep 2
kill -STOP "${pids[1]}"
sleep 12
kill -CONT "${pids[1]}"
wait $lp
report "stall (SIGSTOP replica 1 for 12 s)" "$(cat "$work/stall.json")"
sleep "$FAIL_TIMEOUT"

# --- scaling: 1, 2, 3 replicas at 0.5 CPU each -----------------------------------------------
declare -A rps
for n in 1 2 3; do
  nginx_conf "$n"
  kill -HUP "$nginx_pid"
  sleep 1
  out="$(load 8 $((4 * n)))"
  rps[$n]="$(field "$out" rps)"
  report "scale: $n replica(s) x 0.5 CPU, $((4 * n)) clients" "$out"
done
log replicas "REPLICAS | scaling req/s 1:${rps[1]} 2:${rps[2]} 3:${rps[3]} | load average after: $(loadavg) | $((SECONDS - started)) s"

if ((failures)); then
  log replicas "FAILED: $failures failed request(s)"
  cat "$work/nginx-error.log" >&2 || true
  exit 1
fi
log replicas "ok: 0 failed requests in every phase"
