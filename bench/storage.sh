#!/usr/bin/env bash
# Plugins' data, measured (BENCHMARKS.md "Plugins' data"):
#  1. entity get/set on the store, 100,000 records: SQLite, and PostgreSQL
#     when PG_URL is given;
#  2. an `external` route answering from entity storage against the same
#     route answering without it, req/s with wrk (interleaved, REPS rounds);
#  3. a plugin database `select` by primary key: embedded SQLite, and MySQL
#     or MariaDB when MYSQL_URL is given.
#   bash bench/storage.sh            # BIN=… for another binary, DURATION=10 REPS=3
# Everything on 127.0.0.1; every load loop bounded by wrk -d / SECONDS.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN:-$root/target/production/interpose}"
[[ -n ${BIN:-} ]] || cargo build --profile production --bin interpose --manifest-path "$root/Cargo.toml"
dur="${DURATION:-10}"; reps="${REPS:-3}"
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== entity get/set (store microbenchmark)"
cargo run -q --release -p interpose-registry --example entity_bench --manifest-path "$root/Cargo.toml" -- "sqlite://$work/eb.db"
[[ -n ${PG_URL:-} ]] && cargo run -q --release -p interpose-registry --example entity_bench --manifest-path "$root/Cargo.toml" -- "$PG_URL"

echo "== external route: from entity storage vs without"
mkdir -p "$work/p/config" "$work/p/backend/src"
cat >"$work/p/config/plugin.yaml" <<'YAML'
service: {app_id: sbench, version: 1.0.0, name: sbench, scope: 2}
apis:
  - {type: external, methods: [GET], url: /plain, function: plain}
  - {type: external, methods: [GET], url: /stored, function: stored}
  - {type: external, methods: [POST], url: /seed, function: seed}
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
TOML
"$bin" serve -c "$work/gw.toml" 2>"$work/gw.log" &
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/health" && break; sleep 0.1; done
base="http://127.0.0.1:$port/project/api/project"
curl -s -X POST "$base/seed" >/dev/null
curl -s "$base/stored"; echo
for r in $(seq "$reps"); do
  for path in plain stored; do
    rps=$(timeout $((dur + 20)) wrk -t2 -c32 -d"${dur}s" "$base/$path" | awk '/Requests\/sec/ {print $2}')
    echo "round $r /$path: $rps req/s"
  done
done

echo "== plugin database: select by primary key"
cargo run -q --release -p interpose-plugindb --example select_bench --manifest-path "$root/Cargo.toml"
[[ -n ${MYSQL_URL:-} ]] && cargo run -q --release -p interpose-plugindb --example select_bench --manifest-path "$root/Cargo.toml" -- "$MYSQL_URL"
exit 0
