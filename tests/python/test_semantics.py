"""Finer AMQP semantics as seen through pika: qos windows, multiple acks,
conditional deletes, bad bindings and declarations, frame sizes, many
channels and concurrent clients."""
import random
import threading
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from helpers import consume, wait_message_count


def closed(action, kind=ChannelClosedByBroker):
    with pytest.raises(kind) as caught:
        action()
    return caught.value.reply_code, caught.value.reply_text


def pump_until(connection, condition, limit=5.0):
    """Processes I/O until `condition()` or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)


def test_prefetch_window_and_multiple_ack(broker, connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    channel.confirm_delivery()
    for i in range(10):
        channel.basic_publish(exchange='', routing_key=uniq, body=f'q{i}'.encode())
    channel.basic_qos(prefetch_count=3)
    got = []
    channel.basic_consume(uniq, lambda _ch, method, _p, body: got.append((method, body)))
    pump_until(connection, lambda: len(got) > 3, limit=1.0)
    # Never more than three unacked deliveries.
    assert [body for _, body in got] == [b'q0', b'q1', b'q2']
    # One multiple ack settles all three and opens the window for three more.
    channel.basic_ack(got[2][0].delivery_tag, multiple=True)
    pump_until(connection, lambda: len(got) > 6, limit=1.0)
    assert [body for _, body in got] == [f'q{i}'.encode() for i in range(6)]
    # Nack multiple with requeue returns q3..q5 to the head of the queue.
    channel.basic_nack(got[5][0].delivery_tag, multiple=True, requeue=True)
    pump_until(connection, lambda: len(got) > 9, limit=1.0)
    assert [(body, m.redelivered) for m, body in got[6:]] == [
        (b'q3', True), (b'q4', True), (b'q5', True)]
    channel.queue_delete(queue=uniq)


def test_double_ack_is_406(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    try:
        channel.basic_publish(exchange='', routing_key=uniq, body=b'x')
        method, _, _ = channel.basic_get(uniq)
        assert method is not None
        channel.basic_ack(method.delivery_tag)
        channel.basic_ack(method.delivery_tag)
        assert closed(lambda: channel.basic_qos(prefetch_count=1)) == (
            406, f'PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}')
    finally:
        channel.connection.channel().queue_delete(queue=uniq)


def test_conditional_queue_delete(connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    channel.confirm_delivery()
    channel.basic_publish(exchange='', routing_key=uniq, body=b'x')
    assert closed(lambda: channel.queue_delete(queue=uniq, if_empty=True)) == (
        406, f"PRECONDITION_FAILED - queue '{uniq}' in vhost '/' not empty")
    channel = connection.channel()
    channel.queue_purge(queue=uniq)
    channel.basic_consume(uniq, lambda *_: None)
    other = connection.channel()
    assert closed(lambda: other.queue_delete(queue=uniq, if_unused=True)) == (
        406, f"PRECONDITION_FAILED - queue '{uniq}' in vhost '/' in use")
    assert channel.queue_delete(queue=uniq, if_empty=True).method.message_count == 0


def test_conditional_exchange_delete(connection, channel, uniq):
    channel.exchange_declare(exchange=uniq, exchange_type='direct')
    channel.queue_declare(queue=uniq, exclusive=True)
    channel.queue_bind(queue=uniq, exchange=uniq, routing_key='k')
    assert closed(lambda: channel.exchange_delete(exchange=uniq, if_unused=True)) == (
        406, f"PRECONDITION_FAILED - exchange '{uniq}' in vhost '/' in use")
    channel = connection.channel()
    channel.exchange_delete(exchange=uniq)
    assert closed(lambda: channel.exchange_declare(exchange=uniq, passive=True))[0] == 404


def test_bind_to_missing_queue_or_exchange_is_404(connection, uniq):
    channel = connection.channel()
    assert closed(lambda: channel.queue_bind(queue=uniq, exchange='amq.direct')) == (
        404, f"NOT_FOUND - no queue '{uniq}' in vhost '/'")
    channel = connection.channel()
    channel.queue_declare(queue=uniq, exclusive=True)
    assert closed(lambda: channel.queue_bind(queue=uniq, exchange=uniq + '.x')) == (
        404, f"NOT_FOUND - no exchange '{uniq}.x' in vhost '/'")


def test_reserved_and_default_exchange_rules_are_403(connection, uniq):
    channel = connection.channel()
    assert closed(lambda: channel.exchange_declare(exchange=f'amq.{uniq}',
                                                   exchange_type='direct')) == (
        403, f"ACCESS_REFUSED - exchange name 'amq.{uniq}' contains reserved prefix 'amq.*'")
    channel = connection.channel()
    assert closed(lambda: channel.exchange_delete(exchange='amq.direct')) == (
        403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed")
    channel = connection.channel()
    assert closed(lambda: channel.exchange_delete(exchange='')) == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    channel = connection.channel()
    channel.queue_declare(queue=uniq, exclusive=True)
    assert closed(lambda: channel.queue_bind(queue=uniq, exchange='')) == (
        403, "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_unknown_exchange_type_closes_connection_503(broker, uniq):
    connection = broker.connect()
    channel = connection.channel()
    assert closed(lambda: channel.exchange_declare(exchange=uniq, exchange_type='no-such-type'),
                  kind=ConnectionClosedByBroker) == (
        503, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
    assert connection.is_closed


@pytest.mark.parametrize('frame_max', [4096, 8192])
def test_small_negotiated_frame_max(broker, uniq, frame_max):
    connection = broker.connect(frame_max=frame_max)
    try:
        assert connection._impl.params.frame_max == frame_max
        channel = connection.channel()
        channel.queue_declare(queue=uniq, exclusive=True)
        channel.confirm_delivery()
        payload = frame_max - 8
        rng = random.Random(frame_max)
        bodies = [rng.randbytes(n) for n in (payload - 1, payload, payload + 1, 200_000)]
        # Long headers spread the content header over many bytes as well.
        props = pika.BasicProperties(headers={'pad': 'x' * (frame_max // 2)})
        for body in bodies:
            channel.basic_publish(exchange='', routing_key=uniq, body=body, properties=props)
        got = consume(channel, uniq, len(bodies), auto_ack=True)
        assert [b for _, _, b in got] == bodies
        assert all(p.headers == props.headers for _, p, _ in got)
    finally:
        connection.close()


def test_many_channels_on_one_connection(connection, uniq):
    channels = [connection.channel() for _ in range(40)]
    numbers = {ch.channel_number for ch in channels}
    assert len(numbers) == 40
    for index, ch in enumerate(channels):
        ch.queue_declare(queue=f'{uniq}.{index}', exclusive=True)
        ch.basic_publish(exchange='', routing_key=f'{uniq}.{index}', body=str(index).encode())
    for index, ch in enumerate(channels):
        method, _, body = ch.basic_get(f'{uniq}.{index}', auto_ack=True)
        assert body == str(index).encode()
    for ch in channels[::2]:
        ch.close()
    # Closing some channels leaves the others working.
    for index, ch in list(enumerate(channels))[1::2]:
        assert ch.queue_declare(queue=f'{uniq}.{index}', passive=True).method.message_count == 0


def test_concurrent_publishers_and_consumers(broker, channel, uniq):
    publishers, consumers, per_publisher = 4, 3, 500
    channel.queue_declare(queue=uniq, auto_delete=False)
    received, errors = [], []
    lock = threading.Lock()
    total = publishers * per_publisher
    done = threading.Event()

    def publish(index):
        try:
            conn = broker.connect()
            ch = conn.channel()
            ch.confirm_delivery()
            for i in range(per_publisher):
                ch.basic_publish(exchange='', routing_key=uniq, body=f'{index}:{i}'.encode())
            conn.close()
        except Exception as error:
            errors.append(f'publisher {index}: {error!r}')

    def consume_some(index):
        try:
            conn = broker.connect()
            ch = conn.channel()
            ch.basic_qos(prefetch_count=50)
            for method, _p, body in ch.consume(uniq, inactivity_timeout=0.1):
                if method is not None:
                    ch.basic_ack(method.delivery_tag)
                    with lock:
                        received.append(body)
                        if len(received) >= total:
                            done.set()
                if done.is_set():
                    break
            ch.cancel()
            conn.close()
        except Exception as error:
            errors.append(f'consumer {index}: {error!r}')

    threads = [threading.Thread(target=consume_some, args=(i,), daemon=True)
               for i in range(consumers)]
    threads += [threading.Thread(target=publish, args=(i,), daemon=True)
                for i in range(publishers)]
    for thread in threads:
        thread.start()
    done.wait(timeout=60)
    done.set()
    for thread in threads:
        thread.join(timeout=15)
    assert not errors, errors
    assert sorted(received) == sorted(f'{p}:{i}'.encode() for p in range(publishers)
                                      for i in range(per_publisher))
    # Per publisher, the order of its messages survives (single queue, FIFO)
    # within each consumer; overall each message arrives exactly once.
    wait_message_count(broker, uniq, 0)
    channel.queue_delete(queue=uniq)


@pytest.mark.parametrize('global_qos, expected_total', [(False, 4), (True, 2)])
def test_qos_per_consumer_and_per_channel(connection, channel, uniq, global_qos, expected_total):
    """prefetch_count 2: per consumer (RabbitMQ's reading of global=false) lets
    two consumers hold 2 each; global=true shares 2 across the channel."""
    queues = [f'{uniq}.a', f'{uniq}.b']
    channel.confirm_delivery()
    for name in queues:
        channel.queue_declare(queue=name, exclusive=True)
        for i in range(5):
            channel.basic_publish(exchange='', routing_key=name, body=f'{name}:{i}'.encode())
    channel.basic_qos(prefetch_count=2, global_qos=global_qos)
    got = []
    for name in queues:
        channel.basic_consume(name, lambda _ch, method, _p, body: got.append(body))
    pump_until(connection, lambda: len(got) > expected_total, limit=1.0)
    assert len(got) == expected_total, got
