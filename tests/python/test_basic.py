"""basic.* features through pika's BlockingConnection: returns, confirms,
basic.get, transactions, consumer cancel notifications, capabilities."""
import time

import pika
import pytest
from pika.exceptions import UnroutableError

from helpers import consume, wait_message_count


def test_server_advertises_the_capabilities_pika_uses(connection):
    capabilities = connection._impl.server_capabilities
    for name in ('publisher_confirms', 'basic.nack', 'consumer_cancel_notify',
                 'exchange_exchange_bindings', 'connection.blocked',
                 'authentication_failure_close', 'per_consumer_qos'):
        assert capabilities.get(name) is True, name


def wait_until(connection, condition, timeout=5):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        connection.process_data_events(time_limit=0.05)


def test_mandatory_unroutable_is_returned(connection, channel, uniq):
    returned = []
    channel.add_on_return_callback(lambda _ch, method, props, body:
                                   returned.append((method, props, body)))
    props = pika.BasicProperties(message_id='back-to-me', headers={'n': 1})
    channel.basic_publish(exchange='amq.direct', routing_key=uniq, body=b'nobody home',
                          properties=props, mandatory=True)
    wait_until(connection, lambda: returned)
    method, back_props, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (
        312, 'NO_ROUTE', 'amq.direct', uniq)
    assert body == b'nobody home'
    assert (back_props.message_id, back_props.headers) == ('back-to-me', {'n': 1})

    # Via the default exchange to a queue that does not exist: returned too.
    channel.basic_publish(exchange='', routing_key=uniq, body=b'again', mandatory=True)
    wait_until(connection, lambda: len(returned) == 2)
    assert (returned[1][0].reply_code, returned[1][0].exchange, returned[1][2]) == (
        312, '', b'again')

    # Without mandatory an unroutable message is dropped silently; a routable
    # mandatory message is not returned.
    channel.basic_publish(exchange='amq.direct', routing_key=uniq, body=b'dropped')
    channel.queue_declare(queue=uniq, auto_delete=True)
    channel.basic_publish(exchange='', routing_key=uniq, body=b'routed', mandatory=True)
    [(_m, _p, body)] = consume(channel, uniq, 1, auto_ack=True)
    assert body == b'routed'
    assert len(returned) == 2


def test_confirms_with_blocking_connection(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    channel.confirm_delivery()
    try:
        for i in range(10):
            # Returns only when the broker acked the message; raises otherwise.
            channel.basic_publish(exchange='', routing_key=uniq, body=f'c{i}'.encode())
        # Unroutable without mandatory is still confirmed (acked).
        channel.basic_publish(exchange='amq.direct', routing_key=uniq + '.nowhere', body=b'x')
        with pytest.raises(UnroutableError) as caught:
            channel.basic_publish(exchange='amq.direct', routing_key=uniq + '.nowhere',
                                  body=b'unroutable', mandatory=True)
        [returned] = caught.value.messages
        assert (returned.method.reply_code, returned.method.reply_text, returned.body) == (
            312, 'NO_ROUTE', b'unroutable')
        # The channel is still usable after a return.
        channel.basic_publish(exchange='', routing_key=uniq, body=b'c10', mandatory=True)
        got = consume(channel, uniq, 11, auto_ack=True)
        assert [body for _, _, body in got] == [f'c{i}'.encode() for i in range(11)]
    finally:
        channel.queue_delete(queue=uniq)


def test_basic_get(broker, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    try:
        assert channel.basic_get(uniq) == (None, None, None)
        for i in range(3):
            channel.basic_publish(exchange='', routing_key=uniq, body=f'g{i}'.encode(),
                                  properties=pika.BasicProperties(priority=i))
        method, props, body = channel.basic_get(uniq)
        assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key,
                method.message_count, props.priority, body) == (1, False, '', uniq, 2, 0, b'g0')
        # Unacked: not ready any more, so the count says 2.
        wait_message_count(broker, uniq, 2)
        channel.basic_nack(method.delivery_tag, requeue=True)
        method, _, body = channel.basic_get(uniq)
        assert (method.delivery_tag, method.redelivered, method.message_count, body) == (
            2, True, 2, b'g0')
        channel.basic_ack(method.delivery_tag)
        method, _, body = channel.basic_get(uniq, auto_ack=True)
        assert (method.message_count, body) == (1, b'g1')
        method, _, body = channel.basic_get(uniq, auto_ack=True)
        assert (method.message_count, body) == (0, b'g2')
        assert channel.basic_get(uniq) == (None, None, None)
        wait_message_count(broker, uniq, 0)
    finally:
        channel.queue_delete(queue=uniq)


def test_tx_commit_and_rollback(broker, connection, uniq):
    channel = connection.channel()
    channel.queue_declare(queue=uniq, auto_delete=False)
    try:
        channel.tx_select()
        channel.basic_publish(exchange='', routing_key=uniq, body=b'rolled back 1')
        channel.basic_publish(exchange='', routing_key=uniq, body=b'rolled back 2')
        # Uncommitted publishes are invisible to everyone.
        wait_message_count(broker, uniq, 0)
        channel.tx_rollback()
        wait_message_count(broker, uniq, 0)
        channel.basic_publish(exchange='', routing_key=uniq, body=b'kept 1')
        channel.basic_publish(exchange='', routing_key=uniq, body=b'kept 2')
        wait_message_count(broker, uniq, 0)
        channel.tx_commit()
        wait_message_count(broker, uniq, 2)

        # Acks are transactional too: a committed ack removes the message.
        method, _, body = channel.basic_get(uniq)
        assert body == b'kept 1'
        channel.basic_ack(method.delivery_tag)
        channel.tx_commit()
        channel.close()
        wait_message_count(broker, uniq, 1)
        [(_, _, body)] = consume(connection.channel(), uniq, 1, auto_ack=True)
        assert body == b'kept 2'
    finally:
        connection.channel().queue_delete(queue=uniq)


def test_tx_rolled_back_ack_leaves_message_unacked(broker, connection, uniq):
    channel = connection.channel()
    channel.queue_declare(queue=uniq, auto_delete=False)
    try:
        channel.basic_publish(exchange='', routing_key=uniq, body=b'm')
        channel.tx_select()
        method, _, _ = channel.basic_get(uniq)
        channel.basic_ack(method.delivery_tag)
        channel.tx_rollback()
        # The ack was discarded but the message stays with this channel...
        wait_message_count(broker, uniq, 0)
        channel.close()
        # ...until the channel closes and it is requeued.
        wait_message_count(broker, uniq, 1)
    finally:
        connection.channel().queue_delete(queue=uniq)


def test_broker_cancels_consumer_when_queue_is_deleted(broker, connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    cancelled = []
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = channel.basic_consume(uniq, lambda *_: None)
    other = broker.connect()
    try:
        other.channel().queue_delete(queue=uniq)
    finally:
        other.close()
    wait_until(connection, lambda: cancelled)
    assert cancelled == [tag]
    assert channel.is_open


def test_queue_declare_counts_purge_and_delete(channel, uniq):
    ok = channel.queue_declare(queue=uniq, auto_delete=False)
    # Confirmed publishes are in the queue before the counts below are read.
    channel.confirm_delivery()
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (uniq, 0, 0)
    for _ in range(4):
        channel.basic_publish(exchange='', routing_key=uniq, body=b'p')
    ok = channel.queue_declare(queue=uniq, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (4, 0)
    assert channel.queue_purge(queue=uniq).method.message_count == 4
    assert channel.queue_declare(queue=uniq, passive=True).method.message_count == 0

    for _ in range(3):
        channel.basic_publish(exchange='', routing_key=uniq, body=b'q')
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(uniq, lambda *_: None, auto_ack=False)
    ok = channel.queue_declare(queue=uniq, passive=True)
    # One message is out with the consumer (prefetch 1), two are ready.
    assert (ok.method.message_count, ok.method.consumer_count) == (2, 1)
    # queue.delete reports the ready messages it dropped.
    assert channel.queue_delete(queue=uniq).method.message_count == 2
