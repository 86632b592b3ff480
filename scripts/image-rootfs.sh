#!/usr/bin/env bash
# Assemble the container image's root filesystem: the binary, the shared libraries it links
# (glibc, libgcc_s: nothing else), the CA bundle (for Prometheus/Thanos and HTTPS backends),
# a non-root user, /tmp, and the catalogue (tools.d/, modes/, schemas/) under
# /usr/share/cluster-health-mcp as a starting point for editing (the binary embeds it).
# The Containerfile copies exactly this tree onto an empty (scratch) base; CI runs the same
# tree as a non-root user in an otherwise empty root (tests/image/run.sh).
#
#   scripts/image-rootfs.sh BINARY OUT_DIR
set -euo pipefail
die() { echo "image-rootfs: ERROR: $*" >&2; exit 1; }
[[ $# -eq 2 ]] || die "usage: $0 BINARY OUT_DIR"
bin="$1"; out="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -x "$bin" ]] || die "$bin is not an executable"
command -v ldd >/dev/null || die "ldd not found"
ca=/etc/ssl/certs/ca-certificates.crt
[[ -s "$ca" ]] || die "$ca missing (apt-get install ca-certificates)"
[[ ! -e "$out" ]] || [[ -z "$(ls -A "$out")" ]] || die "$out exists and is not empty"

mkdir -p "$out"/{usr/bin,etc/ssl/certs,tmp,usr/share/cluster-health-mcp}
install -m 0755 "$bin" "$out/usr/bin/cluster-health-mcp"
# Every library the dynamic loader resolves, at the same path (plus the loader itself).
while read -r lib; do
  [[ -f "$lib" ]] || die "library $lib not found"
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done < <(ldd "$bin" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}')
cp -L "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$out/tmp"
# A non-root user (OpenShift assigns an arbitrary UID in group 0 instead; both work).
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:0:nonroot:/tmp:/sbin/nologin\n' > "$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$out/etc/group"
for d in tools.d modes schemas; do
  cp -R "$root/$d" "$out/usr/share/cluster-health-mcp/$d"
done
find "$out/usr/share/cluster-health-mcp" -type d -exec chmod 0755 {} + && find "$out/usr/share/cluster-health-mcp" -type f -exec chmod 0644 {} +
echo "image-rootfs: $(du -sk "$out" | cut -f1) KiB in $out" >&2
