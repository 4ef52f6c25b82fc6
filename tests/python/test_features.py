"""Broker features that pika applications lean on: naming rules, exchange
types and bindings, TTL, dead-lettering, length limits, heartbeats,
direct reply-to, auto-delete."""
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from helpers import consume, wait_message_count


def test_server_named_queue(channel):
    ok = channel.queue_declare(queue='', exclusive=True)
    assert ok.method.queue.startswith('amq.gen-')
    assert ok.method.queue != channel.queue_declare(queue='', exclusive=True).method.queue


def test_reserved_amq_prefix_is_403(channel, uniq):
    with pytest.raises(ChannelClosedByBroker) as caught:
        channel.queue_declare(queue=f'amq.{uniq}')
    assert (caught.value.reply_code, caught.value.reply_text) == (
        403, f"ACCESS_REFUSED - queue name 'amq.{uniq}' contains reserved prefix 'amq.*'")


def test_headers_exchange_all_and_any(broker, channel, uniq):
    # Not auto-delete: consume() cancels its consumer, which would delete them.
    channel.exchange_declare(exchange=uniq, exchange_type='headers', auto_delete=True)
    for name, args in ((f'{uniq}.all', {'x-match': 'all', 'format': 'pdf', 'type': 'report'}),
                       (f'{uniq}.any', {'x-match': 'any', 'format': 'zip', 'type': 'report'})):
        channel.queue_declare(queue=name, auto_delete=False)
        channel.queue_bind(queue=name, exchange=uniq, arguments=args)
    sends = [
        ({'format': 'pdf', 'type': 'report'}, {'all', 'any'}),
        ({'format': 'pdf', 'type': 'report', 'extra': 1}, {'all', 'any'}),
        ({'format': 'pdf'}, set()),
        ({'format': 'zip'}, {'any'}),
        ({'type': 'log'}, set()),
        ({}, set()),
    ]
    channel.confirm_delivery()
    for index, (headers, _targets) in enumerate(sends):
        channel.basic_publish(exchange=uniq, routing_key='ignored', body=str(index).encode(),
                              properties=pika.BasicProperties(headers=headers))
    for suffix in ('all', 'any'):
        expected = [str(i).encode() for i, (_h, t) in enumerate(sends) if suffix in t]
        got = consume(channel, f'{uniq}.{suffix}', len(expected), auto_ack=True)
        assert [body for _, _, body in got] == expected, suffix
        wait_message_count(broker, f'{uniq}.{suffix}', 0)
        channel.queue_delete(queue=f'{uniq}.{suffix}')


def test_exchange_to_exchange_binding_and_unbind(channel, uniq):
    source, destination = f'{uniq}.src', f'{uniq}.dst'
    channel.exchange_declare(exchange=source, exchange_type='topic', auto_delete=False)
    channel.exchange_declare(exchange=destination, exchange_type='fanout', auto_delete=False)
    try:
        channel.exchange_bind(destination=destination, source=source, routing_key='a.*')
        channel.queue_declare(queue=uniq, auto_delete=False)
        channel.queue_bind(queue=uniq, exchange=destination)
        channel.confirm_delivery()
        for key in ('a.b', 'b.a', 'a.c'):
            channel.basic_publish(exchange=source, routing_key=key, body=key.encode())
        got = consume(channel, uniq, 2, auto_ack=True)
        assert [body for _, _, body in got] == [b'a.b', b'a.c']
        assert [m.exchange for m, _, _ in got] == [source, source]

        channel.queue_unbind(queue=uniq, exchange=destination)
        channel.basic_publish(exchange=source, routing_key='a.d', body=b'gone')
        assert channel.basic_get(uniq) == (None, None, None)
    finally:
        channel.queue_delete(queue=uniq)
        channel.exchange_delete(exchange=source)
        channel.exchange_delete(exchange=destination)


def test_per_message_and_per_queue_ttl(broker, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False, arguments={'x-message-ttl': 200})
    try:
        channel.confirm_delivery()
        channel.basic_publish(exchange='', routing_key=uniq, body=b'queue ttl')
        channel.basic_publish(exchange='', routing_key=uniq, body=b'message ttl 0',
                              properties=pika.BasicProperties(expiration='0'))
        wait_message_count(broker, uniq, 0, timeout=5)
        # A longer per-message expiration still loses to the queue's 200 ms.
        channel.basic_publish(exchange='', routing_key=uniq, body=b'long',
                              properties=pika.BasicProperties(expiration='60000'))
        wait_message_count(broker, uniq, 0, timeout=5)
    finally:
        channel.queue_delete(queue=uniq)


def test_dead_lettering_on_reject(channel, uniq):
    dlx, dead = f'{uniq}.dlx', f'{uniq}.dead'
    channel.exchange_declare(exchange=dlx, exchange_type='fanout', auto_delete=False)
    try:
        channel.queue_declare(queue=dead, auto_delete=False)
        channel.queue_bind(queue=dead, exchange=dlx)
        channel.queue_declare(queue=uniq, auto_delete=False,
                              arguments={'x-dead-letter-exchange': dlx})
        channel.confirm_delivery()
        channel.basic_publish(exchange='', routing_key=uniq, body=b'doomed',
                              properties=pika.BasicProperties(headers={'keep': 'me'}))
        [(method, _, _)] = consume(channel, uniq, 1)
        channel.basic_reject(method.delivery_tag, requeue=False)
        [(method, props, body)] = consume(channel, dead, 1, auto_ack=True)
        assert body == b'doomed'
        assert (method.exchange, method.routing_key) == (dlx, uniq)
        assert props.headers['keep'] == 'me'
        [death] = props.headers['x-death']
        assert {k: death[k] for k in ('count', 'reason', 'queue', 'exchange', 'routing-keys')} == {
            'count': 1, 'reason': 'rejected', 'queue': uniq, 'exchange': '',
            'routing-keys': [uniq]}
        assert (props.headers['x-first-death-reason'], props.headers['x-first-death-queue'],
                props.headers['x-first-death-exchange']) == ('rejected', uniq, '')
    finally:
        channel.exchange_delete(exchange=dlx)


def test_max_length_drops_oldest(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True, arguments={'x-max-length': 2})
    channel.confirm_delivery()
    for i in range(5):
        channel.basic_publish(exchange='', routing_key=uniq, body=f'n{i}'.encode())
    assert channel.queue_declare(queue=uniq, passive=True).method.message_count == 2
    got = consume(channel, uniq, 2, auto_ack=True)
    assert [body for _, _, body in got] == [b'n3', b'n4']


def test_heartbeats_keep_an_idle_connection_alive(broker):
    connection = broker.connect(heartbeat=1)
    try:
        assert connection._impl.params.heartbeat == 1
        # pika drops a connection it hears nothing from for ~2-3 intervals.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.2)
        assert connection.is_open
        connection.channel().queue_declare(queue='', exclusive=True)
    finally:
        if connection.is_open:
            connection.close()


def test_direct_reply_to(connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True)
    replies = []
    channel.basic_consume('amq.rabbitmq.reply-to',
                          lambda _ch, method, props, body: replies.append((props, body)),
                          auto_ack=True)
    channel.basic_publish(exchange='', routing_key=uniq, body=b'ping',
                          properties=pika.BasicProperties(reply_to='amq.rabbitmq.reply-to',
                                                          correlation_id='c1'))
    server = connection.channel()
    [(_, props, body)] = consume(server, uniq, 1, auto_ack=True)
    assert props.reply_to.startswith('amq.rabbitmq.reply-to.')
    server.basic_publish(exchange='', routing_key=props.reply_to, body=body + b'-pong',
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
    deadline = time.monotonic() + 5
    while not replies and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert [(p.correlation_id, b) for p, b in replies] == [('c1', b'ping-pong')]


def test_auto_delete_queue_goes_with_its_last_consumer(connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True)
    tag = channel.basic_consume(uniq, lambda *_: None)
    channel.basic_cancel(tag)
    probe = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as caught:
        probe.queue_declare(queue=uniq, passive=True)
    assert caught.value.reply_code == 404
