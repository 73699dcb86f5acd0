#!/usr/bin/env bash
# Gateway RSS with N small plugins installed (default 1,000): after start,
# and after one request through every plugin (each JS runtime created).
# Every plugin rejects its own route, so no upstream is needed.
#   bash bench/rss-plugins.sh            N=1000 WORKERS=2
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
N=${N:-1000} WORKERS=${WORKERS:-2} PORT=${PORT:-18500}
bin="${BIN:-$root/target/release/interpose}"
[[ -x $bin ]] || cargo build --release --bin interpose --manifest-path "$root/Cargo.toml"
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
{
  printf '[server]\nlisten = "127.0.0.1:%s"\nadmin_listen = "127.0.0.1:%s"\nworkers = %s\n' "$PORT" "$((PORT + 1))" "$WORKERS"
  printf '[storage]\nurl = "sqlite::memory:"\n[log]\nlevel = "warn"\n'
  printf '[[upstreams]]\nscope = "project"\nmount = "/project/api/project"\nurl = "http://127.0.0.1:9/project/api/project"\n'
} >"$dir/interpose.toml"
for i in $(seq 1 "$N"); do
  p="$dir/p$i"
  mkdir -p "$p/config" "$p/backend/src"
  printf "service: {app_id: p%s, version: 1.0.0, name: p%s, scope: 2}\napis:\n  - {type: intercept, methods: [GET], url: /p%s/x, function: f}\n" "$i" "$i" "$i" >"$p/config/plugin.yaml"
  printf "const seen = new Map()\nexport function f(r) { seen.set(r.url, (seen.get(r.url) || 0) + 1); return { statusCode: 403, body: { plugin: %s } } }\n" "$i" >"$p/backend/src/index.js"
  printf '[[plugins]]\npath = "p%s"\n' "$i" >>"$dir/interpose.toml"
done
t0=$(date +%s.%N)
"$bin" serve -c "$dir/interpose.toml" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
t1=$(date +%s.%N)
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
start_rss=$(rss)
ok=0
for i in $(seq 1 "$N"); do
  code=$(timeout 5 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/project/api/project/p$i/x") || true
  [[ $code == 403 ]] && ok=$((ok + 1))
done
end_rss=$(rss)
printf 'plugins=%s workers=%s start_s=%.1f rss_after_start_mb=%.0f rss_after_one_call_each_mb=%.0f calls_ok=%s\n' \
  "$N" "$WORKERS" "$(echo "$t1 - $t0" | bc)" "$(echo "$start_rss / 1024" | bc -l)" "$(echo "$end_rss / 1024" | bc -l)" "$ok"
