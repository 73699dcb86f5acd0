#!/usr/bin/env bash
# Soak: mixed traffic (allowed, rejected, replaced, subscribed) against
# `interpose serve`, with every plugin upgraded through the admin API every
# UPGRADE_EVERY seconds. Reports failed requests that should have succeeded,
# RSS at start and end, and subscriber events delivered vs requests sent.
#   bash bench/soak.sh                          # 30 minutes
#   DURATION=60 UPGRADE_EVERY=10 bash bench/soak.sh
# Needs wrk (apt-get install wrk). Everything on 127.0.0.1; bounded by DURATION.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=${DURATION:-1800} UPGRADE_EVERY=${UPGRADE_EVERY:-60} BASE_PORT=${BASE_PORT:-18700}
UP=$BASE_PORT GW=$((BASE_PORT + 1)) ADMIN=$((BASE_PORT + 2))
bin="${BIN:-$root/target/release/interpose}"
[[ -x $bin ]] || cargo build --release --bin interpose --manifest-path "$root/Cargo.toml"
command -v wrk >/dev/null || { echo "soak needs wrk (apt-get install wrk)"; exit 2; }
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$dir"' EXIT

cat >"$dir/upstream.py" <<PY
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, body):
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self): self.reply(b'{"uuid":"U1"}')
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0); self.reply(self.rfile.read(n) or b"{}")
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", $UP), H).serve_forever()
PY
python3 "$dir/upstream.py" & pids+=($!)

printf '[server]\nlisten = "127.0.0.1:%s"\nadmin_listen = "127.0.0.1:%s"\n[storage]\nurl = "sqlite://%s/reg.db"\n[log]\nlevel = "warn"\n[[upstreams]]\nscope = "project"\nmount = "/project/api/project"\nurl = "http://127.0.0.1:%s/project/api/project"\n' \
  "$GW" "$ADMIN" "$dir" "$UP" >"$dir/interpose.toml"
"$bin" serve -c "$dir/interpose.toml" 2>"$dir/serve.log" & pids+=($!)
gw_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ADMIN) 2>/dev/null && break; sleep 0.1; done

mkplugin() { # name version apis code
  mkdir -p "$dir/$1/config" "$dir/$1/backend/src"
  printf "service: {app_id: %s, version: %s, name: %s, scope: 2}\napis:\n%s" "$1" "$2" "$1" "$3" >"$dir/$1/config/plugin.yaml"
  printf '%s\n' "$4" >"$dir/$1/backend/src/index.js"
}
GUARD='  - {type: intercept, methods: [GET], url: /users/me, function: f}\n'
SUB='  - {type: subscribe, methods: [GET], url: /users/me, function: f}\n'
REP='  - {type: replace, methods: [GET], url: /own, function: f}\n'
write_all() { # version
  mkplugin guard "$1" "$(printf "$GUARD")" "export function f(r) { if (r.headers['x-block'] === '1') return { statusCode: 403, body: { blocked: true } } }"
  mkplugin sub "$1" "$(printf "$SUB")" "import { appendStrings } from '@ones-op/node-file'
export async function f(r) { await appendStrings('events.txt', r.statusCode + '\\n') }"
  mkplugin rep "$1" "$(printf "$REP")" "export function f() { return { body: { own: '$1' } } }"
}
write_all 1.0.0
export INTERPOSE_ADMIN="http://127.0.0.1:$ADMIN"
for p in guard sub rep; do "$bin" plugin install "$dir/$p" --org --id "$p" >/dev/null; done

cat >"$dir/mixed.lua" <<'LUA'
-- Round robin over three kinds. wrk keeps several requests in flight per
-- thread, so a response is judged by itself: 200, or the guard's own 403.
local paths = { "/project/api/project/users/me", "/project/api/project/users/me", "/project/api/project/own" }
local block = { false, true, false }
local i = 0
bad, sent_allowed = 0, 0
local threads = {}
setup = function(t) table.insert(threads, t) end
request = function()
  i = i % 3 + 1
  if i == 1 then sent_allowed = sent_allowed + 1 end
  local h = {}
  if block[i] then h["X-Block"] = "1" end
  return wrk.format("GET", paths[i], h)
end
response = function(status, headers, body)
  if not (status == 200 or (status == 403 and body:find('"blocked"'))) then
    bad = bad + 1
    _G["st" .. status] = (_G["st" .. status] or 0) + 1
    if not first_bad then first_bad = status .. " " .. body:sub(1, 300) end
  end
end
done = function(summary)
  local b, a = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); a = a + t:get("sent_allowed") end
  io.write(string.format("SOAK requests=%d unexpected=%d socket_errors=%d allowed_sent=%d\n", summary.requests, b,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, a))
  for _, code in ipairs({ 400, 403, 404, 408, 413, 429, 431, 500, 502, 503, 504 }) do
    local n = 0
    for _, t in ipairs(threads) do n = n + (t:get("st" .. code) or 0) end
    if n > 0 then io.write(string.format("SOAK unexpected status %d: %d\n", code, n)) end
  end
  for _, t in ipairs(threads) do
    local f = t:get("first_bad")
    if f then io.write("SOAK first unexpected: " .. f .. "\n") break end
  end
end
LUA
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"; }
rss_start=$(rss)
timeout $((DURATION + 30)) wrk -t2 -c16 -d"${DURATION}s" --timeout 5s -s "$dir/mixed.lua" "http://127.0.0.1:$GW" >"$dir/wrk.out" &
wrk_pid=$!
n=1
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep "$UPGRADE_EVERY"
  kill -0 "$wrk_pid" 2>/dev/null || break
  n=$((n + 1))
  write_all "1.0.$n"
  for p in guard sub rep; do "$bin" plugin upgrade "$p" "$dir/$p" >/dev/null; done
  echo "upgrade $n done, rss $(($(rss) / 1024)) MB"
done
wait "$wrk_pid" || true
sleep 2
rss_end=$(rss)
grep SOAK "$dir/wrk.out" || cat "$dir/wrk.out"
events=$(find "$dir" -name events.txt -path '*sub*' -exec cat {} + 2>/dev/null | wc -l)
dropped=$(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^interpose_post_dropped_total/ {print $2}')
echo "gateway warnings by kind:"
grep -oE '(upstream for scope [a-z]+ is unavailable|did not answer within|plugin [a-z]+ failed: [a-zA-Z]+\(\) [a-z ]+)' "$dir/serve.log" | sort | uniq -c | sort -rn | head -5 || true
echo "upgrades=$((n - 1)) rss_start_mb=$((rss_start / 1024)) rss_end_mb=$((rss_end / 1024)) subscriber_events=$events (allowed requests sent: see allowed_sent; the last few may still be in flight when wrk stops) post_dropped=$dropped"
