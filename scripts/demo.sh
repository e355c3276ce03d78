#!/usr/bin/env bash
# Brings up skiff and shows it working. Today skiff is its store: this builds skiff, starts
# `skiff store` on 127.0.0.1:2379 (state in /var/lib/skiff/store) and drives it with the real
# etcdctl 3.4. The store keeps running afterwards; stop it with: kill "$(cat /run/skiff/store.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -q
install -m 0755 target/release/skiff /usr/local/bin/skiff

mkdir -p /run/skiff /var/lib/skiff
pidfile=/run/skiff/store.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "demo: skiff store already running (pid $(cat "$pidfile"))"
else
  skiff store --data-dir /var/lib/skiff/store --listen-client-urls http://127.0.0.1:2379 \
    >/var/lib/skiff/store.log 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do grep -q "skiff store ready" /var/lib/skiff/store.log && break; sleep 0.1; done
  grep "skiff store ready" /var/lib/skiff/store.log
fi

export ETCDCTL_API=3
ctl() { echo "+ etcdctl $*"; etcdctl --endpoints=127.0.0.1:2379 "$@"; }
ctl put /demo/greeting "hello from skiff"
ctl get /demo/greeting -w json
ctl put /demo/color blue
ctl get --prefix /demo/
lease=$(etcdctl --endpoints=127.0.0.1:2379 lease grant 30 | awk '{print $2}')
ctl put --lease="$lease" /demo/session alive
ctl lease timetolive "$lease" --keys
echo "+ etcdctl watch --prefix /demo/ --rev=1   (history replayed from revision 1)"
timeout 2 etcdctl --endpoints=127.0.0.1:2379 watch --prefix /demo/ --rev=1 || true
ctl txn <<'TXN'
value("/demo/color") = "blue"

put /demo/color green

put /demo/color red

TXN
ctl get /demo/color --print-value-only
ctl snapshot save /var/lib/skiff/demo-snapshot.db 2>/dev/null
ctl endpoint status -w table
ctl member list -w table
echo
echo "skiff store is running on 127.0.0.1:2379 (pid $(cat "$pidfile"), data in /var/lib/skiff/store)."
echo "Stop it with: kill \$(cat $pidfile)"
