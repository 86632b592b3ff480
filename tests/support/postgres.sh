#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: a temp dir, a free loopback port, password auth
# over TCP, run as an unprivileged user when we are root (PostgreSQL refuses root).
#
#   tests/support/postgres.sh            start; print the URL (no password) on line 1 and the
#                                        password file on line 2; stop when stdin closes
#                                        (a test spawns it with a pipe and drops the pipe)
#   tests/support/postgres.sh CMD ARGS   start, run CMD with CHM_TEST_POSTGRES_URL and
#                                        CHM_TEST_POSTGRES_PASSWORD_FILE set, stop, exit
#                                        with CMD's status
#
# The binaries come from .deps/bin (scripts/test-deps.sh) or /usr/lib/postgresql/*/bin.
# Everything goes to stderr except the two lines above; failures are loud.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin=""
for d in "$root/.deps/bin" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then bin="$d"; break; fi
done
[[ -n "$bin" ]] || die "PostgreSQL server binaries not found (.deps/bin or /usr/lib/postgresql/*/bin): run scripts/test-deps.sh"

dir="$(mktemp -d "${TMPDIR:-/tmp}/chm-pg.XXXXXX")"
as_user=()
if [[ "$(id -u)" == 0 ]]; then
  user="${CHM_TEST_POSTGRES_OS_USER:-nobody}"
  id "$user" >/dev/null 2>&1 || die "no unprivileged user '$user' to run PostgreSQL as"
  chown "$user" "$dir"
  chmod 700 "$dir"
  as_user=(runuser -u "$user" --)
fi

password="chm-test-$RANDOM$RANDOM"
printf '%s\n' "$password" >"$dir/password"
chmod 644 "$dir/password"

stop() {
  "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM HUP

"${as_user[@]}" "$bin/initdb" -D "$dir/data" -U chm --pwfile="$dir/password" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

started=""
for _ in 1 2 3 4 5; do
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null 2>&1; then
    started=1
    break
  fi
done
[[ -n "$started" ]] || { cat "$dir/server.log" >&2 || true; die "PostgreSQL did not start"; }

url="postgres://chm@127.0.0.1:$port/postgres"
echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $url (data $dir)" >&2

if [[ $# -gt 0 ]]; then
  set +e
  CHM_TEST_POSTGRES_URL="$url" CHM_TEST_POSTGRES_PASSWORD_FILE="$dir/password" "$@"
  status=$?
  set -e
  exit "$status"
fi

echo "$url"
echo "$dir/password"
# Serve until whoever started us closes our stdin (or dies).
cat >/dev/null || true
