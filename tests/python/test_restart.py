"""What survives a broker restart: durable topology and persistent messages.

Each test gets a broker of its own (see `restartable` in conftest.py).
"""

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from helpers import consume

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                  message_id='kept', headers={'h': 1})


def declare_topology(channel, uniq):
    channel.exchange_declare(exchange=f'{uniq}.durable-x', exchange_type='topic', durable=True)
    channel.exchange_declare(exchange=f'{uniq}.transient-x', exchange_type='fanout')
    channel.queue_declare(queue=f'{uniq}.durable-q', durable=True)
    channel.queue_declare(queue=f'{uniq}.transient-q', durable=False)
    channel.queue_bind(queue=f'{uniq}.durable-q', exchange=f'{uniq}.durable-x',
                       routing_key='keep.#')


def gone(connection, declare):
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as caught:
        declare(channel)
    return caught.value.reply_code == 404


def check_after_restart(broker, uniq, expected_bodies):
    connection = broker.connect()
    try:
        channel = connection.channel()
        ok = channel.queue_declare(queue=f'{uniq}.durable-q', passive=True)
        assert ok.method.message_count == len(expected_bodies)
        got = consume(channel, f'{uniq}.durable-q', len(expected_bodies))
        assert [body for _, _, body in got] == expected_bodies
        assert all((p.delivery_mode, p.message_id, p.headers) == (2, 'kept', {'h': 1})
                   for _, p, _ in got)
        channel.basic_ack(0, multiple=True)
        # The durable binding still routes.
        channel.confirm_delivery()
        channel.basic_publish(exchange=f'{uniq}.durable-x', routing_key='keep.after',
                              body=b'after', mandatory=True)
        [(_, _, body)] = consume(channel, f'{uniq}.durable-q', 1, auto_ack=True)
        assert body == b'after'
        assert gone(connection, lambda ch: ch.queue_declare(queue=f'{uniq}.transient-q',
                                                            passive=True))
        assert gone(connection, lambda ch: ch.exchange_declare(
            exchange=f'{uniq}.transient-x', passive=True))
        connection.channel().queue_delete(queue=f'{uniq}.durable-q')
        connection.channel().exchange_delete(exchange=f'{uniq}.durable-x')
    finally:
        if connection.is_open:
            connection.close()


def publish_persistent(channel, uniq, count):
    channel.confirm_delivery()
    bodies = [f'p{i}'.encode() for i in range(count)]
    for body in bodies:
        channel.basic_publish(exchange=f'{uniq}.durable-x', routing_key='keep.it', body=body,
                              properties=PERSISTENT)
    return bodies


def test_graceful_restart_keeps_durable_state(restartable, uniq):
    connection = restartable.broker.connect()
    channel = connection.channel()
    declare_topology(channel, uniq)
    bodies = publish_persistent(channel, uniq, 20)
    # Two of them are out with a consumer, unacked, when the broker stops.
    channel.basic_qos(prefetch_count=2)
    consume(channel, f'{uniq}.durable-q', 2)
    restartable.restart()
    check_after_restart(restartable.broker, uniq, bodies)


def test_crash_keeps_confirmed_persistent_messages(restartable, uniq):
    connection = restartable.broker.connect()
    channel = connection.channel()
    declare_topology(channel, uniq)
    # Confirmed means safe: these must survive a SIGKILL.
    bodies = publish_persistent(channel, uniq, 200)
    restartable.crash()
    check_after_restart(restartable.broker, uniq, bodies)

