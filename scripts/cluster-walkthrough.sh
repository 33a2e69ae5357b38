#!/usr/bin/env bash
# A cluster of separate processes on loopback: a throwaway redis-server (the
# shared lease store), three `node` processes (examples/node.rs), traffic
# from node a, then node c killed with SIGKILL (a crash) and its keys moving
# to a and b once their leases expire. Everything started here is stopped by
# pid on exit. Needs redis-server and redis-cli on the PATH.
#
#   scripts/cluster-walkthrough.sh
#
# What it does and prints: docs/operations.md ("The walkthrough by hand").
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

echo "== building the node example (release)"
cargo build --release -q -p axactor-cluster --example node
NODE_BIN="${CARGO_TARGET_DIR:-target}/release/examples/node"

WORK="$(mktemp -d)"
PIDS=()
REDIS_PID=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        # Daemonized (not our child): poll until it is gone (at most 5 s),
        # so its last writes in $WORK do not race the `rm`.
        for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    # Tolerates failure: under `set -e` a failing step here would turn a
    # passing run into a failed one.
    rm -rf "$WORK" || true
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! port_in_use "$p" && ! grep -qx "$p" "$WORK/ports" 2>/dev/null; then
            echo "$p" >>"$WORK/ports"
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

# Waits up to $3 seconds for a line matching $2 in file $1 after line $4 (default 0).
wait_for() {
    local file=$1 pattern=$2 secs=$3 from=${4:-0}
    for _ in $(seq 1 $((secs * 10))); do
        if tail -n +"$((from + 1))" "$file" 2>/dev/null | grep -q -- "$pattern"; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file; its last lines:" >&2
    tail -n 20 "$file" >&2 || true
    exit 1
}

echo "== redis-server (no persistence, loopback only)"
REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --pidfile "$WORK/redis.pid" \
    --save '' --appendonly no --dir "$WORK" --logfile "$WORK/redis.log"
for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ] && [ -s "$WORK/redis.pid" ]; then
        REDIS_PID="$(cat "$WORK/redis.pid")"
        break
    fi
    sleep 0.1
done
[ -n "$REDIS_PID" ] || { echo "redis-server did not start" >&2; cat "$WORK/redis.log" >&2; exit 1; }
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
echo "redis-server pid $REDIS_PID on $REDIS_URL"

# One secret for the whole cluster, from the environment (never a flag).
AXACTOR_TOKEN="walkthrough-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export AXACTOR_TOKEN

declare -A ADDR
for n in a b c; do ADDR[$n]="127.0.0.1:$(free_port)"; done
start_node() {
    local name=$1; shift
    local peers=()
    for other in a b c; do
        if [ "$other" != "$name" ]; then peers+=(--peer "$other=${ADDR[$other]}"); fi
    done
    "$NODE_BIN" --name "$name" --listen "${ADDR[$name]}" "${peers[@]}" --redis "$REDIS_URL" "$@" \
        >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
    echo "node $name pid $! on ${ADDR[$name]}"
}

echo "== three nodes"
start_node b
start_node c
start_node a --drive 8
for n in a b c; do wait_for "$WORK/$n.log" "listening on" 30; done

echo "== traffic from node a: which node serves each key (node@epoch)"
# Wait until every key is served and each node serves some.
ok=""
for _ in $(seq 1 200); do
    line="$(grep '^served' "$WORK/a.log" | tail -n 1 || true)"
    if [ -n "$line" ] && ! grep -q '=?' <<<"$line" && grep -q '=a@' <<<"$line" \
        && grep -q '=b@' <<<"$line" && grep -q '=c@' <<<"$line"; then
        ok=1
        break
    fi
    sleep 0.1
done
echo "$line"
[ -n "$ok" ] || { echo "not every key served by a spread of the three nodes within 20 s" >&2; exit 1; }
# Each node prints its shards when they change, on a half-second tick: the
# first line may come a tick after the first round served.
for n in a b c; do
    wait_for "$WORK/$n.log" "^$n shards" 10
    grep "^$n shards" "$WORK/$n.log" | tail -n 1
done

MARK="$(wc -l <"$WORK/a.log")"
echo "== kill -9 node c (pid $PID_c): a crash, its leases are not released"
kill -9 "$PID_c"
wait "$PID_c" 2>/dev/null || true
PIDS=("$PID_a" "$PID_b")
START=$(date +%s.%N)
# Wait for a round served without c and without failures.
ok=""
for _ in $(seq 1 300); do
    line="$(tail -n +"$((MARK + 1))" "$WORK/a.log" | grep '^served' | tail -n 1 || true)"
    if [ -n "$line" ] && ! grep -q '=?' <<<"$line" && ! grep -q '=c@' <<<"$line"; then
        ok=1
        break
    fi
    sleep 0.1
done
[ -n "$ok" ] || { echo "c's keys not served by a and b within 30 s of the kill" >&2; exit 1; }
END=$(date +%s.%N)
echo "== keys moving (node a's log since the kill)"
tail -n +"$((MARK + 1))" "$WORK/a.log" | grep -E '^(moved|served .*=\?)' | head -n 20 || true
echo "all keys served again after $(awk "BEGIN { printf \"%.1f\", $END - $START }") s:"
echo "$line"
sleep 1  # each node prints its shards every half second
for n in a b; do grep "shards" "$WORK/$n.log" | tail -n 1; done

echo "== stopping a and b (SIGTERM: graceful), then redis"
kill -TERM "$PID_a" "$PID_b"
wait "$PID_a" "$PID_b" 2>/dev/null || true
PIDS=()
grep -h "shutting down" "$WORK/a.log" "$WORK/b.log"
echo "== done"
