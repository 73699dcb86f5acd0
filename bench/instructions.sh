#!/usr/bin/env bash
# Instructions per request, interpose against nginx (A) and nginx+njs (B2),
# counted by callgrind: unlike CPU time on these shared machines, the count
# does not move between runs, so a change of a few percent shows.
#
#   bash bench/peers.sh              # once: installs the peers, writes their configs
#   bash bench/instructions.sh       # ~5 min; needs valgrind (apt-get install valgrind)
#   N=5000 BIN=target/release/interpose bash bench/instructions.sh
#   BROWSER=1 bash bench/instructions.sh   # requests with a browser's 13 headers
#
# Each gateway runs under `valgrind --tool=callgrind` (nginx with
# `master_process off`, so its one process is the worker); 300 requests
# warm it up, the counters are zeroed, then N `GET /users/me` go over 4
# keep-alive connections to the harness's upstream (nginx on 127.0.0.1:18080).
# The count covers every thread of the gateway, not the client or upstream.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${SHARED:-$root/../shared/bench}"
bin="${BIN:-$root/target/production/interpose}"
out="${OUT_DIR:-${TMPDIR:-/tmp}/interpose-peerbench}"
n="${N:-2000}"
conf="$out/conf"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
[[ -f $conf/gateway.nginx.conf && -f $conf/upstream.nginx.conf ]] ||
  { echo "no harness configs in $conf: run bash bench/peers.sh once first" >&2; exit 1; }
[[ -x $bin ]] || { echo "no interpose binary at $bin (cargo build --profile production, or BIN=)" >&2; exit 1; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -n ${KEEP:-} ]] || rm -rf "$work"; }
trap cleanup EXIT

# The client: N requests over 4 keep-alive connections, bounded by the count.
cat > "$work/load.py" <<'PY'
import os, sys, http.client, threading
port, n, header = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
k, v = header.split(':', 1)
headers = {k: v.strip()}
if os.environ.get('BROWSER') == '1':
    # What the ONES web front end's requests carry besides Host (12 more).
    headers.update({
        'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
        'Accept': 'application/json, text/plain, */*',
        'Accept-Language': 'en-US,en;q=0.9,zh-CN;q=0.8',
        'Referer': 'https://ones.example.com/project/',
        'Origin': 'https://ones.example.com',
        'Cookie': 'language=en; timezone=Asia%2FShanghai; ones-lt=eyJhbGciOiJIUzI1NiJ9.e30.abc',
        'Ones-User-Id': 'U1abcdef',
        'Ones-Auth-Token': 'tok-0123456789abcdef0123456789abcdef',
        'Sec-Fetch-Dest': 'empty',
        'Sec-Fetch-Mode': 'cors',
        'Sec-Fetch-Site': 'same-origin',
        'Cache-Control': 'no-cache',
    })
def run(m):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    for _ in range(m):
        c.request('GET', '/project/api/project/users/me', headers=headers)
        c.getresponse().read()
ts = [threading.Thread(target=run, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY

mkdir -p "$work/up/logs" "$work/ng/logs"
nginx -p "$work/up/" -e "$work/up/logs/err.log" -c "$conf/upstream.nginx.conf" &
pids+=($!)
# The harness's gateway nginx, one process, on ports 182xx (A 18281, B2 18285).
sed -e 's/^worker_processes .*;/master_process off;/' -e "s#^pid .*;#pid $work/ng.pid;#" \
    -e 's/listen 127.0.0.1:180\([0-9][0-9]\)/listen 127.0.0.1:182\1/' "$conf/gateway.nginx.conf" > "$work/ng.conf"
grep -q '^daemon off' "$work/ng.conf" || sed -i '1i daemon off;' "$work/ng.conf"
sleep 0.5

# count NAME PORT HEADER CMD...: prints NAME and instructions per request.
count() {
  local name=$1 port=$2 header=$3; shift 3
  local cg="$work/cg.$port"
  valgrind --tool=callgrind --callgrind-out-file="$cg" "$@" > "$work/$port.log" 2>&1 &
  local vp=$!
  pids+=($vp)
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$port/project/api/project/users/me" && break; sleep 0.5; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/project/api/project/users/me" ||
    { echo "$name did not start; its output:" >&2; cat "$work/$port.log" >&2; exit 1; }
  python3 "$work/load.py" "$port" 300 "$header"
  callgrind_control -z "$vp" >/dev/null 2>&1
  python3 "$work/load.py" "$port" "$n" "$header"
  callgrind_control -d "$vp" >/dev/null 2>&1
  sleep 1
  kill "$vp"; wait "$vp" 2>/dev/null || true
  local f ir
  f=$(ls -t "$cg".* | head -1)
  ir=$(grep -h '^summary:' "$f" | awk '{print $2}')
  printf '  %-44s %8d\n' "$name" $((ir / n))
  rm -f "$cg"*
}

echo "instructions per request (callgrind, N=$n${BROWSER:+, browser-like headers}):"
ngx=(nginx -p "$work/ng/" -e "$work/ng/logs/err.log" -c "$work/ng.conf")
count "A   nginx proxy_pass" 18281 "X-None: 1" "${ngx[@]}"
count "B2  nginx+njs, allowed" 18285 "X-None: 1" "${ngx[@]}"
count "B2  nginx+njs, blocked" 18285 "X-Block: 1" "${ngx[@]}"
count "X0  interpose, no plugin" 18090 "X-None: 1" "$bin" serve -c "$shared/interpose-bench-noplugin.toml"
count "X   interpose + plugin, allowed" 18089 "X-None: 1" "$bin" serve -c "$shared/interpose-bench.toml"
count "X   interpose + plugin, blocked" 18089 "X-Block: 1" "$bin" serve -c "$shared/interpose-bench.toml"
