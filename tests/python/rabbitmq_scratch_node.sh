#!/usr/bin/env bash
# A throwaway second RabbitMQ node (127.0.0.1:5673, node pikatest@localhost,
# data under /tmp/pika-rmq) for validating test_restart.py against RabbitMQ
# without disturbing the machine's main node. Needs root and the Debian
# rabbitmq-server package. Usage:
#   rabbitmq_scratch_node.sh start|restart|crash|stop
# and run the suite with
#   WARREN_TEST_RESTART_BROKER=127.0.0.1:5673 \
#   WARREN_TEST_RESTART_CMD="$PWD/rabbitmq_scratch_node.sh restart" \
#   WARREN_TEST_CRASH_CMD="$PWD/rabbitmq_scratch_node.sh crash"
set -euo pipefail

base=/tmp/pika-rmq
node=pikatest@localhost

boot() {
    mkdir -p "$base"
    [ -f "$base/enabled_plugins" ] || echo '[].' > "$base/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$base"
    su rabbitmq -s /bin/sh -c "cd $base && \
        RABBITMQ_NODENAME=$node RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=5673 \
        RABBITMQ_DIST_PORT=25999 RABBITMQ_MNESIA_BASE=$base/mnesia RABBITMQ_LOG_BASE=$base/log \
        RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins RABBITMQ_PID_FILE=$base/pid \
        rabbitmq-server -detached"
    wait_ready
}

wait_ready() {
    for _ in $(seq 1 120); do
        if rabbitmqctl -q -n "$node" await_startup --timeout 5 >/dev/null 2>&1 \
            && rabbitmqctl -q -n "$node" list_queues >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    echo "scratch node $node did not start" >&2
    return 1
}

case "${1:-}" in
    start) boot ;;
    restart)
        # A graceful restart of the RabbitMQ application, data kept on disk.
        rabbitmqctl -q -n "$node" stop_app
        rabbitmqctl -q -n "$node" start_app
        wait_ready ;;
    crash)
        # SIGKILL the Erlang VM: no shutdown, then boot again on the same data.
        kill -9 "$(cat "$base/pid")"
        while kill -0 "$(cat "$base/pid")" 2>/dev/null; do sleep 0.1; done
        boot ;;
    stop) rabbitmqctl -q -n "$node" stop ;;
    *) echo "usage: $0 start|restart|crash|stop" >&2; exit 2 ;;
esac
