"""RabbitMQ extensions that pika applications (and celery/kombu) use:
priority queues, queue expiry, overflow modes, single active consumer,
alternate exchanges, dead-lettering on expiry, consumer cancel semantics."""
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError

from helpers import consume, wait_message_count


def test_priority_queue_delivers_highest_first(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False, arguments={'x-max-priority': 5})
    try:
        channel.confirm_delivery()
        for body, priority in ((b'low', 1), (b'none', None), (b'high', 5), (b'mid', 3),
                               (b'above-max', 9), (b'high-2', 5)):
            channel.basic_publish(exchange='', routing_key=uniq, body=body,
                                  properties=pika.BasicProperties(priority=priority))
        got = consume(channel, uniq, 6, auto_ack=True)
        # Priorities above x-max-priority count as the maximum; FIFO within one.
        assert [body for _, _, body in got] == [b'high', b'above-max', b'high-2', b'mid',
                                                b'low', b'none']
        assert got[1][1].priority == 9
    finally:
        channel.queue_delete(queue=uniq)


def test_unused_queue_expires(broker, connection, uniq):
    channel = connection.channel()
    channel.queue_declare(queue=uniq, arguments={'x-expires': 300})
    # Any declare, even passive, counts as use and restarts the expiry timer,
    # so each probe follows an idle gap well beyond 300 ms.
    for _attempt in range(5):
        time.sleep(1)
        probe = connection.channel()
        try:
            probe.queue_declare(queue=uniq, passive=True)
        except ChannelClosedByBroker as closed:
            assert closed.reply_code == 404
            return
        probe.close()
    raise AssertionError('queue with x-expires=300 still exists after 5 idle seconds')


def test_reject_publish_overflow_nacks(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False,
                          arguments={'x-max-length': 1, 'x-overflow': 'reject-publish'})
    try:
        channel.confirm_delivery()
        channel.basic_publish(exchange='', routing_key=uniq, body=b'fits')
        with pytest.raises(NackError):
            channel.basic_publish(exchange='', routing_key=uniq, body=b'overflow')
        assert channel.queue_declare(queue=uniq, passive=True).method.message_count == 1
        method, _, body = channel.basic_get(uniq, auto_ack=True)
        assert body == b'fits'
    finally:
        channel.queue_delete(queue=uniq)


def test_single_active_consumer(broker, connection, uniq):
    setup = connection.channel()
    setup.queue_declare(queue=uniq, auto_delete=False,
                        arguments={'x-single-active-consumer': True})
    try:
        first, second = connection.channel(), connection.channel()
        got = {'first': [], 'second': []}
        first_tag = first.basic_consume(
            uniq, lambda ch, m, _p, b: (got['first'].append(b), ch.basic_ack(m.delivery_tag)))
        second.basic_consume(
            uniq, lambda ch, m, _p, b: (got['second'].append(b), ch.basic_ack(m.delivery_tag)))
        setup.confirm_delivery()
        for i in range(4):
            setup.basic_publish(exchange='', routing_key=uniq, body=f's{i}'.encode())
        pump(connection, lambda: len(got['first']) == 4)
        assert got == {'first': [b's0', b's1', b's2', b's3'], 'second': []}
        # Cancelling the active consumer hands the queue to the next one.
        first.basic_cancel(first_tag)
        setup.basic_publish(exchange='', routing_key=uniq, body=b's4')
        pump(connection, lambda: got['second'])
        assert got['second'] == [b's4']
    finally:
        connection.channel().queue_delete(queue=uniq)


def pump(connection, condition, limit=5.0):
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, 'timed out waiting for deliveries'
        connection.process_data_events(time_limit=0.05)


def test_alternate_exchange_takes_unroutable(channel, uniq):
    main, alternate = f'{uniq}.main', f'{uniq}.ae'
    channel.exchange_declare(exchange=alternate, exchange_type='fanout')
    channel.exchange_declare(exchange=main, exchange_type='direct',
                             arguments={'alternate-exchange': alternate})
    try:
        channel.queue_declare(queue=f'{uniq}.routed', auto_delete=False)
        channel.queue_declare(queue=f'{uniq}.unrouted', auto_delete=False)
        channel.queue_bind(queue=f'{uniq}.routed', exchange=main, routing_key='known')
        channel.queue_bind(queue=f'{uniq}.unrouted', exchange=alternate)
        channel.confirm_delivery()
        channel.basic_publish(exchange=main, routing_key='known', body=b'a')
        # Mandatory is satisfied by the alternate exchange: no return.
        channel.basic_publish(exchange=main, routing_key='unknown', body=b'b', mandatory=True)
        [(_, _, body)] = consume(channel, f'{uniq}.routed', 1, auto_ack=True)
        assert body == b'a'
        [(method, _, body)] = consume(channel, f'{uniq}.unrouted', 1, auto_ack=True)
        assert (body, method.exchange, method.routing_key) == (b'b', main, 'unknown')
    finally:
        for name in ('routed', 'unrouted'):
            channel.queue_delete(queue=f'{uniq}.{name}')
        channel.exchange_delete(exchange=main)
        channel.exchange_delete(exchange=alternate)


def test_expired_messages_are_dead_lettered(channel, uniq):
    dead = f'{uniq}.dead'
    channel.queue_declare(queue=dead, auto_delete=False)
    channel.queue_declare(queue=uniq, auto_delete=False, arguments={
        'x-message-ttl': 100, 'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': dead})
    try:
        channel.confirm_delivery()
        channel.basic_publish(exchange='', routing_key=uniq, body=b'stale')
        [(method, props, body)] = consume(channel, dead, 1, auto_ack=True)
        assert (body, method.exchange, method.routing_key) == (b'stale', '', dead)
        [death] = props.headers['x-death']
        assert (death['reason'], death['queue'], death['count']) == ('expired', uniq, 1)
    finally:
        channel.queue_delete(queue=uniq)
        channel.queue_delete(queue=dead)


def test_unacked_messages_stay_after_basic_cancel(broker, connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    try:
        channel.confirm_delivery()
        for i in range(2):
            channel.basic_publish(exchange='', routing_key=uniq, body=f'c{i}'.encode())
        got = []
        tag = channel.basic_consume(uniq, lambda _ch, m, _p, b: got.append(m))
        pump(connection, lambda: len(got) == 2)
        channel.basic_cancel(tag)
        # Cancelling a consumer does not requeue what it holds...
        wait_message_count(broker, uniq, 0)
        # ...and those deliveries can still be acked on the channel.
        channel.basic_ack(got[0].delivery_tag)
        channel.basic_nack(got[1].delivery_tag, requeue=True)
        wait_message_count(broker, uniq, 1)
    finally:
        channel.queue_delete(queue=uniq)
