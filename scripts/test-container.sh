#!/usr/bin/env bash
# The container image's runtime layer, proven without a container daemon (issue #14). There is no
# Docker/Podman here and no registry to pull distroless from, so this builds the same root
# filesystem deploy/Containerfile's runtime stage produces — the stripped release binary at
# /usr/local/bin/imgbind plus exactly the shared libraries `ldd` lists (what distroless/cc
# carries), an /etc/passwd with the nonroot user — and runs it under runc (Debian) with what the
# Containerfile says: USER, ENV, ENTRYPOINT + CMD, HEALTHCHECK (read by scripts/containerfile.py,
# so the two cannot drift apart). The container gets a read-only root filesystem, no
# capabilities, no writable path at all (the server writes nothing), its own network namespace (a veth pair this script makes) and cgroup namespace,
# and a memory limit. Then, from outside, it checks:
#   - the server inside sized its memory budget from the cgroup limit (3/4 of it);
#   - the HEALTHCHECK command succeeds inside the container (runc exec);
#   - /healthz, and a transform (4 MP JPEG -> 400 px WebP) over the veth;
#   - a job larger than the jobs' share of that budget gets 9413, and the container survives;
#   - it runs as uid 65532 on a read-only root;
#   - SIGTERM stops it, with the server's clean-stop log line.
# Needs root, runc, iproute2, curl and a release build (scripts/build.sh). About 10 seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$IMGBIND_ROOT"

BIN="$IMGBIND_ROOT/target/release/imgbind"
MEMORY_LIMIT_MIB="${IMGBIND_CONTAINER_MEMORY_MIB:-256}"
[[ -x "$BIN" ]] || { log container "no $BIN: run scripts/build.sh"; exit 1; }
command -v runc >/dev/null || { log container "no runc: run scripts/setup.sh"; exit 1; }
[[ "$(id -u)" -eq 0 ]] || { log container "needs root (runc, network namespaces)"; exit 1; }

id="imgbind-ct-$$"
netns="$id"
host_if="ibh$$"
ct_if="ibc$$"
octet=$(($$ % 250 + 1))
host_ip="10.213.$octet.1"
ct_ip="10.213.$octet.2"
work="$(mktemp -d)"
started=$SECONDS

cleanup() {
  runc kill "$id" KILL 2>/dev/null || true
  runc delete --force "$id" 2>/dev/null || true
  ip link del "$host_if" 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  log container "FAIL: $*"
  log container "container log:"
  tail -n 20 "$work/container.log" >&2 || true
  exit 1
}

# --- what the Containerfile says ---------------------------------------------------------------
python3 scripts/containerfile.py deploy/Containerfile >"$work/image.json"
field() { python3 -c "import json,sys; v=json.load(open('$work/image.json'))$1; print(v)"; }
port="$(field "['expose'][0]")"
user="$(field "['user']")"
uid="${user%%:*}"
gid="${user##*:}"

# --- the root filesystem: the binary, the libraries it links, a passwd entry ------------------
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs"/{usr/local/bin,etc,proc,sys,dev}
strip -o "$rootfs/usr/local/bin/imgbind" "$BIN"
ldd "$BIN" | awk '/=>/ { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
  [[ -f "$lib" ]] || continue
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' "$uid" "$gid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$gid" >"$rootfs/etc/group"
log container "root filesystem: $(du -sh "$rootfs" | cut -f1) ($(find "$rootfs" -type f | wc -l) files)"

# --- network: a namespace of our own, reached over a veth pair ----------------------------------
ip netns add "$netns"
ip link add "$host_if" type veth peer name "$ct_if"
ip link set "$ct_if" netns "$netns"
ip addr add "$host_ip/30" dev "$host_if"
ip link set "$host_if" up
ip -n "$netns" addr add "$ct_ip/30" dev "$ct_if"
ip -n "$netns" link set "$ct_if" up
ip -n "$netns" link set lo up

# --- the OCI bundle: runc's default spec, edited to the Containerfile ---------------------------
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" "$work/image.json" "$netns" "$MEMORY_LIMIT_MIB" <<'PY'
import json, sys
path, image_path, netns, limit_mib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec, image = json.load(open(path)), json.load(open(image_path))
uid, gid = (int(x) for x in image["user"].split(":"))
process = spec["process"]
process["terminal"] = False
process["args"] = image["entrypoint"] + image["cmd"]
process["user"] = {"uid": uid, "gid": gid}
process["cwd"] = "/"
process["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + [
    f"{k}={v}" for k, v in image["env"].items()
]
process["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
process["noNewPrivileges"] = True
spec["root"] = {"path": "rootfs", "readonly": True}
spec["hostname"] = "imgbind"
linux = spec["linux"]
linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"] + [
    {"type": "network", "path": f"/var/run/netns/{netns}"},
    {"type": "cgroup"},
]
limit = limit_mib << 20
linux["resources"]["memory"] = {"limit": limit, "swap": limit}
json.dump(spec, open(path, "w"), indent=1)
PY

# --- run it -------------------------------------------------------------------------------------
runc run --detach --bundle "$work/bundle" --pid-file "$work/pid" "$id" >"$work/container.log" 2>&1 </dev/null
pid="$(cat "$work/pid")"
log container "started $id (pid $pid) with a ${MEMORY_LIMIT_MIB} MiB memory limit, listening on $ct_ip:$port"

# The HEALTHCHECK command, run inside the container as a runtime would, until it passes.
mapfile -t health < <(python3 -c "import json; print('\n'.join(json.load(open('$work/image.json'))['healthcheck']))")
t0=$SECONDS
until runc exec --user "$uid:$gid" "$id" "${health[@]}" >"$work/health.out" 2>&1; do
  ((SECONDS - t0 < 15)) || fail "the HEALTHCHECK (${health[*]}) never passed: $(cat "$work/health.out")"
  sleep 0.1
done
log container "HEALTHCHECK ${health[*]}: $(cat "$work/health.out")"

# The budget the server chose, from its JSON startup log: 3/4 of the cgroup limit.
budget="$(python3 -c "
import json,sys
for line in open('$work/container.log'):
    try: event = json.loads(line)
    except ValueError: continue
    fields = event.get('fields', event)
    if 'memory_budget_mib' in fields: print(fields['memory_budget_mib']); break
")"
expected=$((MEMORY_LIMIT_MIB * 3 / 4))
[[ "$budget" == "$expected" ]] || fail "memory budget ${budget:-not logged} MiB, expected $expected (3/4 of the ${MEMORY_LIMIT_MIB} MiB limit)"
log container "memory budget: $budget MiB (3/4 of the cgroup limit)"

# /healthz from outside, over the veth.
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://$ct_ip:$port/healthz")"
[[ "$code" == 200 ]] || fail "/healthz answered $code"

# A transform, in workerd's multipart shape.
post() { # post OUT IMAGE TRANSFORMS FORMAT -> prints the HTTP status; headers in OUT.headers
  curl -sS --max-time 30 -o "$1" -D "$1.headers" -w '%{http_code}' \
    -F "image=@$2;filename=image" -F "transforms=$3" -F "output_format=$4" \
    "http://$ct_ip:$port/transform"
}
code="$(post "$work/out.webp" "$IMGBIND_CORPUS/photo-4mp-twowings.jpg" '[{"imageIndex":0,"width":400}]' image/webp)"
[[ "$code" == 200 ]] || fail "transform answered $code: $(head -c 300 "$work/out.webp")"
[[ "$(head -c 4 "$work/out.webp")" == RIFF && "$(tail -c +9 "$work/out.webp" | head -c 4)" == WEBP ]] ||
  fail "the transform's answer is not a WebP"
log container "transform: 200, $(stat -c %s "$work/out.webp") bytes of WebP"

# A job the budget can never hold (two 15 MP RGBA layers drawn on a 16 MP photo: ~300 MB of
# decoded pixels against a ${expected} MiB budget) is refused from the headers, before decoding.
boundary="imgbindcontainer0123456789"
{
  printf -- '--%s\r\ncontent-disposition: form-data; name="image"; filename="image"\r\n\r\n' "$boundary"
  cat "$IMGBIND_CORPUS/photo-16mp-seeding-progressive.jpg"
  for _ in 1 2; do
    printf -- '\r\n--%s\r\ncontent-disposition: form-data; name="draw_image"; filename="image"\r\n\r\n' "$boundary"
    cat "$IMGBIND_CORPUS/graphic-15mp-kay.png"
  done
  printf -- '\r\n--%s\r\ncontent-disposition: form-data; name="transforms"\r\n\r\n' "$boundary"
  printf '[{"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":2,"targetImageIndex":0}]'
  printf -- '\r\n--%s\r\ncontent-disposition: form-data; name="output_format"\r\n\r\nimage/jpeg\r\n--%s--\r\n' "$boundary" "$boundary"
} >"$work/big.body"
big="$(curl -sS --max-time 30 -o "$work/big.out" -D "$work/big.headers" -w '%{http_code}' \
  -H "content-type: multipart/form-data; boundary=$boundary" --data-binary "@$work/big.body" \
  "http://$ct_ip:$port/transform")"
[[ "$big" == 413 ]] && grep -qi '^cf-images-binding: err=9413' "$work/big.headers" ||
  fail "a job over the budget answered $big $(grep -i cf-images-binding "$work/big.headers" || true)"
[[ "$(cat "$work/pid")" == "$pid" ]] && kill -0 "$pid" || fail "the container died"
code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://$ct_ip:$port/healthz")"
[[ "$code" == 200 ]] || fail "/healthz after the big job answered $code"
log container "a job over the budget: $big with err=9413, container alive"

# Non-root, read-only root.
[[ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" == "$uid" ]] || fail "not running as uid $uid"
awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | grep -q '^ro' || fail "the root filesystem is writable"
peak_kib="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
log container "uid $uid, read-only root, peak RSS $((peak_kib / 1024)) MiB"

# SIGTERM: drains and exits 0.
runc kill "$id" TERM
t0=$SECONDS
while [[ "$(runc state "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" == running ]]; do
  ((SECONDS - t0 < 40)) || fail "still running 40 s after SIGTERM"
  sleep 0.1
done
grep -q '"stopped"' "$work/container.log" || fail "no clean stop in the log"
log container "SIGTERM: stopped cleanly after $((SECONDS - t0)) s"
log container "ok ($((SECONDS - started)) s)"
