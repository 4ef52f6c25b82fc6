#!/bin/sh
# The three-node rows of BENCHMARKS.md ("Three nodes"): throughput with the
# consumer on another node than the queue's leader, failover, idle queues.
#
#   crates/warren/bench/cluster3.sh warren BIN OUT   # three `warren serve` on 127.0.0.1
#   crates/warren/bench/cluster3.sh rabbit BIN OUT   # a RabbitMQ cluster already running
#                                                    # with AMQP on 5681-5683 (rabbitmq3.sh)
# BIN is a release `warren` binary (its `perf` drives both brokers). Each
# row's JSON (warren perf --json) and the CPU/RSS samples land in OUT.
# Needs python3 with pika for the idle-queue row (tests/python/.venv has it).
set -eu
kind=$1 bin=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../../../tests/python/.venv/bin/python}
mkdir -p "$out"

if [ "$kind" = warren ]; then
    base=567
    peers=1@127.0.0.1:25671,2@127.0.0.1:25672,3@127.0.0.1:25673
    start_node() {
        i=$1
        "$bin" serve --node-id "$i" --peers "$peers" --cluster-listen "127.0.0.1:2567$i" \
            --amqp-listen "127.0.0.1:567$i" --http-listen "127.0.0.1:1567$i" \
            --data-dir "$out/n$i" --rebalance-every 0 >>"$out/n$i.out" 2>>"$out/n$i.log" &
        echo $! >"$out/n$i.pid"
    }
    for i in 1 2 3; do start_node "$i"; done
    for i in 1 2 3; do
        until grep -q "warren listening" "$out/n$i.out" 2>/dev/null; do sleep 0.2; done
    done
    pid_of() { cat "$out/n$1.pid"; }
else
    base=568
    pid_of() { cat "/var/tmp/rmq/$1/mnesia/rabbit$1@$(hostname -s).pid"; }
    start_node() { "$here/rabbitmq3.sh" start >/dev/null; }
fi
u() { echo "amqp://guest:guest@127.0.0.1:$base$1/%2f"; }

row="-s1024 -q100 -c256 --queue-type quorum -f persistent --json --no-progress"
# 1 and 4 publishers on node 1 (the queue's leader: declared there),
# the consumer on node 2.
for x in 1 4; do
    # shellcheck disable=SC2086
    "$bin" perf --declare-uri "$(u 1)" --publish-uri "$(u 1)" --consume-uri "$(u 2)" \
        -x$x -y1 -z30 -u "bench-x$x" $row >"$out/row-x$x.json"
done

# Failover: 1000 msg/s published on node 3, consumed on node 2, the
# leader (node 1) killed with -9 after 10 s. The largest end-to-end
# latency is the time from the kill to the delivery of what was in flight.
# shellcheck disable=SC2086
"$bin" perf --declare-uri "$(u 1)" --publish-uri "$(u 3)" --consume-uri "$(u 2)" \
    -x1 -y1 -r1000 -z30 -u bench-failover $row >"$out/failover.json" &
perf=$!
sleep 10
kill -9 "$(pid_of 1)"
date +%s.%N >"$out/killed-at"
wait $perf || true
start_node 1
sleep 10

# Idle queues: IDLE_QUEUES (default 10 000) quorum queues declared on
# node 1 (3 replicas each), then CPU and RSS of every node over 60 s of
# idleness. IDLE_QUEUES=0 skips it.
if [ "${IDLE_QUEUES:-10000}" = 0 ]; then
    if [ "$kind" = warren ]; then
        for i in 1 2 3; do kill "$(pid_of $i)" 2>/dev/null || true; done
    fi
    exit 0
fi
"$py" "$here/idle_queues.py" "$(u 1)" "${IDLE_QUEUES:-10000}" >"$out/idle-declare.txt" 2>&1 || true
sleep 20
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for i in 1 2 3; do echo "$(cpu "$(pid_of $i)")" >"$out/cpu0-$i"; done
sleep 60
for i in 1 2 3; do
    p=$(pid_of $i)
    c0=$(cat "$out/cpu0-$i")
    c1=$(cpu "$p")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
    echo "node $i: cpu $(echo "($c1 - $c0) / $ticks / 60 * 100" | bc -l | cut -c1-5) % of a core, rss ${rss} kB" \
        | tee -a "$out/idle.txt"
done

if [ "$kind" = warren ]; then
    for i in 1 2 3; do kill "$(pid_of $i)" 2>/dev/null || true; done
fi
