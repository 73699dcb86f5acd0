#!/usr/bin/env bash
# Plugins' data, measured (BENCHMARKS.md "Plugins' data"):
#  1. entity get/set on the store, 100,000 records: SQLite, and PostgreSQL
#     (PG_URL, or a throwaway server started here when PostgreSQL's
#     binaries are installed);
#  2. an `external` route answering from entity storage against the same
#     route answering without it, req/s with wrk (interleaved, REPS rounds);
#  3. a plugin database `select` by primary key: embedded SQLite, and MySQL
#     or MariaDB (MYSQL_URL, or a throwaway MariaDB started here).
#   bash bench/storage.sh            # BIN=… for another binary, DURATION=10 REPS=3
# Everything on 127.0.0.1; every load loop bounded by wrk -d / SECONDS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN:-$root/target/production/interpose}"
[[ -n ${BIN:-} ]] || cargo build --profile production --bin interpose --manifest-path "$root/Cargo.toml"
dur="${DURATION:-10}"; reps="${REPS:-3}"
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [[ -z ${PG_URL:-} ]] && pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1) && [[ -n $pg ]]; then
  mkdir -p "$work/pg" && chown postgres: "$work" "$work/pg" 2>/dev/null || true
  runas=""; [ "$(id -u)" = 0 ] && runas="runuser -u postgres --"
  $runas "$pg/initdb" -A trust -U postgres --no-sync -D "$work/pg/data" >/dev/null
  pgport=$(free_port)
  $runas "$pg/postgres" -D "$work/pg/data" -k "$work/pg" -p "$pgport" -h 127.0.0.1 >"$work/pg/log" 2>&1 &
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$pgport) 2>/dev/null && break; sleep 0.1; done; sleep 1
  PG_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
fi
if [[ -z ${MYSQL_URL:-} ]] && [[ -x /usr/sbin/mariadbd ]]; then
  user=""; [ "$(id -u)" = 0 ] && user="--user=root"
  mariadb-install-db --no-defaults --datadir="$work/my" $user --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
  myport=$(free_port)
  /usr/sbin/mariadbd --no-defaults --datadir="$work/my" --socket="$work/my.sock" --port="$myport" --bind-address=127.0.0.1 \
    --skip-grant-tables --skip-name-resolve $user >"$work/my.log" 2>&1 &
  for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/$myport) 2>/dev/null && break; sleep 0.1; done
  MYSQL_URL="mysql://root@127.0.0.1:$myport/bench"
fi

if [[ -z ${ONLY_ROUTE:-} ]]; then
echo "== entity get/set (store microbenchmark)"
cargo run -q --release -p interpose-registry --example entity_bench --manifest-path "$root/Cargo.toml" -- "sqlite://$work/eb.db"
[[ -n ${PG_URL:-} ]] && cargo run -q --release -p interpose-registry --example entity_bench --manifest-path "$root/Cargo.toml" -- "$PG_URL"

fi
echo "== external route: from entity storage vs without"
mkdir -p "$work/p/config" "$work/p/backend/src"
cat >"$work/p/config/plugin.yaml" <<'YAML'
service: {app_id: sbench, version: 1.0.0, name: sbench, scope: 1}
apis:
  - {type: external, methods: [GET], url: /team/:teamUUID/plain, function: plain}
  - {type: external, methods: [GET], url: /team/:teamUUID/stored, function: stored}
  - {type: external, methods: [POST], url: /team/:teamUUID/seed, function: seed}
storage:
  entities:
    - name: item
      attributes:
        title: {type: string, length: 64, required: true}
        n: {type: integer, required: true}
YAML
cat >"$work/p/backend/src/index.js" <<'JS'
import { storage } from '@ones-op/sdk'
export async function plain() { return { body: { title: 'hello', n: 1 } } }
export async function stored() { return { body: await storage.entity('item').get('k1') } }
export async function seed() { await storage.entity('item').set('k1', { title: 'hello', n: 1 }); return { body: {} } }
JS
port=$((20000 + RANDOM % 20000)); admin=$((port + 1))
cat >"$work/gw.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
[storage]
url = "sqlite://$work/gw.db"
[log]
level = "warn"
[[upstreams]]
scope = "project"
mount = "/project/api/project"
url = "http://127.0.0.1:9/project/api/project"
[[plugins]]
path = "$work/p"
teams = ["T1"]
TOML
"$bin" serve -c "$work/gw.toml" 2>"$work/gw.log" &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/health" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$admin/health" || { cat "$work/gw.log"; exit 1; }
base="http://127.0.0.1:$port/project/api/project/team/T1"
curl -s -X POST "$base/seed" >/dev/null
curl -s "$base/stored"; echo
for r in $(seq "$reps"); do
  for path in plain stored; do
    rps=$(timeout $((dur + 20)) wrk -t2 -c32 -d"${dur}s" "$base/$path" | awk '/Requests\/sec/ {print $2}')
    echo "round $r /$path: $rps req/s"
  done
done

[[ -n ${ONLY_ROUTE:-} ]] && exit 0
echo "== plugin database: select by primary key"
cargo run -q --release -p interpose-plugindb --example select_bench --manifest-path "$root/Cargo.toml"
[[ -n ${MYSQL_URL:-} ]] && cargo run -q --release -p interpose-plugindb --example select_bench --manifest-path "$root/Cargo.toml" -- "$MYSQL_URL"
exit 0
