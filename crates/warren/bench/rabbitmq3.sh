#!/bin/sh
# A three-node RabbitMQ cluster on this machine, for the "Three nodes" rows
# of BENCHMARKS.md: rabbitN@HOST with AMQP on 568N and distribution on
# 2568N, data under /var/tmp/rmq/N. Needs Debian's rabbitmq-server (run as
# root: the server runs as the rabbitmq user).
#   rabbitmq3.sh create    first start, then nodes 2 and 3 join node 1
#   rabbitmq3.sh start     start the three again (already clustered)
#   rabbitmq3.sh stop
set -eu
H=$(hostname -s)
base=/var/tmp/rmq
start_nodes() {
    for n in 1 2 3; do
        RABBITMQ_NODENAME=rabbit$n@$H RABBITMQ_NODE_PORT=568$n RABBITMQ_DIST_PORT=2568$n \
        RABBITMQ_MNESIA_BASE=$base/$n/mnesia RABBITMQ_LOG_BASE=$base/$n/log \
        RABBITMQ_ENABLED_PLUGINS_FILE=$base/$n/plugins RABBITMQ_CONFIG_FILE=$base/$n/rabbitmq \
        rabbitmq-server -detached || true
    done
    for n in 1 2 3; do rabbitmqctl -n rabbit$n@$H await_startup; done
}
case "${1:-}" in
create)
    for n in 1 2 3; do
        mkdir -p $base/$n
        echo "[]." >$base/$n/plugins
        echo "loopback_users = none" >$base/$n/rabbitmq.conf
    done
    chown -R rabbitmq:rabbitmq $base
    start_nodes
    for n in 2 3; do
        rabbitmqctl -n rabbit$n@$H stop_app
        rabbitmqctl -n rabbit$n@$H join_cluster rabbit1@$H
        rabbitmqctl -n rabbit$n@$H start_app
    done
    rabbitmqctl -n rabbit1@$H cluster_status
    ;;
start) start_nodes ;;
stop) for n in 1 2 3; do rabbitmqctl -n rabbit$n@$H stop || true; done ;;
*) echo "usage: $0 create|start|stop" >&2; exit 2 ;;
esac
