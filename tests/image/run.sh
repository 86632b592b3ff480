#!/usr/bin/env bash
# The container image, built and run without a Docker engine:
#  1. scripts/image-rootfs.sh assembles the image's root filesystem from CHM_BIN;
#  2. buildah (Debian's, daemonless, vfs storage in a temp dir) builds the real Containerfile
#     rootless, as an unprivileged user (nobody, one-UID user namespace), its `build` stage
#     replaced by that tree (--build-context build=DIR: no registry needed);
#  3. the image's config is checked (non-root USER, entrypoint, port) and its size reported;
#  4. the image runs (buildah run, chroot isolation, as the image's USER): a tool call on the
#     embedded demo cluster, then `serve` over HTTP: startup time to /healthz, /readyz, the
#     server's UID;
#  5. the same tree runs read-only as UID 65532 in an otherwise empty root (chroot).
# Runs as root (to drop to the build user, to chroot, and for `buildah run`); buildah and curl
# come from scripts/test-deps.sh.
#
#   CHM_BIN=target/debug/cluster-health-mcp tests/image/run.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
die() { echo "image: ERROR: $*" >&2; exit 1; }
log() { echo "image: $*" >&2; }

bin="${CHM_BIN:-$root/target/debug/cluster-health-mcp}"
[[ -x "$bin" ]] || die "CHM_BIN=$bin is not an executable (cargo build first)"
[[ $(id -u) -eq 0 ]] || die "needs root (buildah storage and chroot)"
for b in buildah curl chroot unshare setpriv; do command -v "$b" >/dev/null || die "$b not found (run scripts/test-deps.sh)"; done

work="$(mktemp -d "${TMPDIR:-/tmp}/chm-image.XXXXXX")"
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  buildah "${B[@]}" rm --all >/dev/null 2>&1 || true
  buildah "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
B=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
# The rootless builder: nobody, in a user namespace that maps only its own UID.
builder_uid=65534
rootless=(setpriv --reuid=$builder_uid --regid=$builder_uid --clear-groups
  env HOME="$work/home" XDG_RUNTIME_DIR="$work/home"
  buildah --root "$work/storage" --runroot "$work/run-rootless" --storage-driver vfs)

# 1. The root filesystem.
"$root/scripts/image-rootfs.sh" "$bin" "$work/ctx/rootfs"

# 2. Build the Containerfile rootless (empty context: the build stage is replaced, nothing
#    else is copied). The user's files: the tree, an empty context, a home, the storage.
mkdir "$work/empty" "$work/home"
cp "$root/Containerfile" "$work/Containerfile"
chmod 0711 "$work"
chown -R "$builder_uid:$builder_uid" "$work/ctx" "$work/empty" "$work/home" "$work/Containerfile"
install -d -o "$builder_uid" -g "$builder_uid" "$work/storage" "$work/run-rootless"
(cd "$work/home" && "${rootless[@]}" build --quiet --build-context "build=$work/ctx" -f "$work/Containerfile" \
  -t localhost/cluster-health-mcp:ci "$work/empty") >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  die "rootless buildah build (as UID $builder_uid) failed"
}
not_builder="$(find "$work/storage" ! -user "$builder_uid" -print -quit)"
[[ -z "$not_builder" ]] || die "the build wrote $not_builder as another user than UID $builder_uid"

# 3. The image's configuration.
cfg="$(buildah "${B[@]}" inspect --type image localhost/cluster-health-mcp:ci)"
check() { # JSON path (python expression on `c`), expected
  got="$(printf '%s' "$cfg" | python3 -c "import json,sys; c=json.load(sys.stdin)['OCIv1']['config']; print(json.dumps($1))")"
  [[ "$got" == "$2" ]] || die "image config $1 is $got, expected $2"
}
check 'c["User"]' '"65532:0"'
check 'c["Entrypoint"]' '["/usr/bin/cluster-health-mcp"]'
check 'c["Cmd"]' '["serve", "--transport=http", "--bind=0.0.0.0:8080"]'
check 'sorted(c["ExposedPorts"])' '["8080/tcp"]'
size="$(buildah "${B[@]}" images --format '{{.Size}}' localhost/cluster-health-mcp:ci)"
log "built localhost/cluster-health-mcp:ci rootless as UID $builder_uid ($size, from $(basename "$bin") $(du -h "$bin" | cut -f1))"

# The image holds exactly the tree (no shell, no package manager).
ctr="$(buildah "${B[@]}" from localhost/cluster-health-mcp:ci)"
mnt="$(buildah "${B[@]}" mount "$ctr")"
diff -r "$work/ctx/rootfs" "$mnt" >/dev/null || die "image contents differ from scripts/image-rootfs.sh's tree"
[[ ! -e "$mnt/bin/sh" && ! -e "$mnt/usr/bin/sh" ]] || die "the image has a shell"
buildah "${B[@]}" umount "$ctr" >/dev/null

# 4a. One tool call in the image, as its USER.
run=(buildah "${B[@]}" run --isolation chroot "$ctr" --)
out="$("${run[@]}" /usr/bin/cluster-health-mcp call list-pods --text --args '{"limit": 3}')"
grep -q '^3 pods' <<<"$out" || die "list-pods in the image answered: $out"
out="$("${run[@]}" /usr/bin/cluster-health-mcp --specs /usr/share/cluster-health-mcp/tools.d \
  --specs /usr/share/cluster-health-mcp/modes --replace-catalogue validate)"
grep -q '^ok: ' <<<"$out" || die "the shipped catalogue in the image does not validate: $out"

# 4b. serve: time from start to a healthy /healthz, then /readyz, and the server's UID.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
start_ns=$(date +%s%N)
"${run[@]}" /usr/bin/cluster-health-mcp serve --transport=http --bind="127.0.0.1:$port" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/serve.log" >&2; die "no /healthz within 10 s"; }
startup_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
ready="$(curl -fsS "http://127.0.0.1:$port/readyz")"
grep -q '"mode":"demo"' <<<"$ready" || die "/readyz: $ready"
server_pid="$(pgrep -f "cluster-health-mcp serve --transport=http --bind=127.0.0.1:$port" | while read -r p; do
  [[ "$(readlink "/proc/$p/exe" 2>/dev/null)" == *cluster-health-mcp* ]] && echo "$p"; done | head -1)"
[[ -n "$server_pid" ]] || die "cannot find the server process"
uid="$(awk '/^Uid:/{print $2}' "/proc/$server_pid/status")"
[[ "$uid" == 65532 ]] || die "the server runs as UID $uid, expected 65532"
rss_kb="$(awk '/^VmRSS:/{print $2}' "/proc/$server_pid/status")"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
log "image serve: /healthz after ${startup_ms} ms (buildah run included), UID $uid, RSS $((rss_kb / 1024)) MiB"

# 5. The same tree, read-only, as UID 65532 in an otherwise empty root.
out="$(unshare --mount --propagation private sh -c '
  set -e
  mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"
  exec chroot --userspec=65532:0 "$1" /usr/bin/cluster-health-mcp call get-cluster-health --text
' sh "$work/ctx/rootfs")"
grep -qi 'nodes' <<<"$out" || die "get-cluster-health in the read-only root answered: $out"
log "OK: image built rootless by buildah $(buildah --version | awk '{print $3}'), runs as non-root, read-only root works"
