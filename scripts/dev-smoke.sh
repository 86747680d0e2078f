#!/usr/bin/env bash
# Checks the first five minutes as a new user meets them: `scripts/dev.sh` on a machine whose
# 127.0.0.1:5432 does not let user postgres in (DEV_POSTGRES_PROBE_URL points it at a closed
# port), so that dev.sh makes its private cluster; then the printed dashboard answers, the
# printed key signs in, and Ctrl-C stops the services and the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
fail() {
    echo "dev-smoke: $*" >&2
    sed 's/^/  dev.sh| /' "$log" >&2
    [ -n "${dev_pid:-}" ] && kill -INT -- "-$dev_pid" 2>/dev/null
    exit 1
}
get_status() { python3 - "$@" <<'PY'
import sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1], headers={"authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else {})
try:
    print(urllib.request.urlopen(request, timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}

# Its own process group, so that the Ctrl-C below reaches dev.sh as a terminal's would.
DEV_POSTGRES_PROBE_URL=postgres://postgres@127.0.0.1:1/postgres setsid bash scripts/dev.sh >"$log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 600); do
    grep -q '^Dashboard' "$log" && [ "$(get_status http://localhost:8081/ui/login)" = 200 ] && break
    kill -0 "$dev_pid" 2>/dev/null || fail "dev.sh stopped before the dashboard answered"
    sleep 0.5
done
grep -q 'private Postgres in .* (started; stopped on exit)' "$log" || fail "no private Postgres was started"
[ "$(get_status http://localhost:8081/ui/login)" = 200 ] || fail "the dashboard did not answer"
key="$(sed -n 's/.*API key: \(tp_[A-Za-z0-9_]*\).*/\1/p' "$log" | head -1)"
[ -n "$key" ] || fail "no API key was printed"
[ "$(get_status http://localhost:8081/api/tasks "$key")" = 200 ] || fail "the printed key does not work"
port="$(sed -n 's/.*private Postgres in .* on 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)"

kill -INT -- "-$dev_pid"
wait "$dev_pid" || true
for service in 8080 8081 "$port"; do
    if (: <"/dev/tcp/127.0.0.1/$service") 2>/dev/null; then fail "port $service still answers after Ctrl-C"; fi
done
echo "dev-smoke: dev.sh made its own Postgres (port $port), served the dashboard and the printed key, and stopped everything on Ctrl-C"
