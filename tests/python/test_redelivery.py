"""Unacked messages come back with redelivered=True when their consumer dies."""
import socket

from helpers import CLIENTS, consume, wait_message_count


def declare(channel, name, count):
    channel.queue_declare(queue=name, auto_delete=False)
    for i in range(count):
        channel.basic_publish(exchange='', routing_key=name, body=f'm{i}')


def test_killed_consumer_messages_are_redelivered(broker, programs, channel, uniq):
    declare(channel, uniq, 5)
    # Prefetch 3: the first consumer holds m0..m2; m3 and m4 stay in the queue.
    holder = programs('hold_consumer.py', uniq, 3, 3, directory=CLIENTS)
    holder.wait_for(r'holding')
    assert holder.out.seen == [f' [x] m{i} redelivered=False' for i in range(3)] + [' [*] holding']
    wait_message_count(broker, uniq, 2)

    # SIGKILL: no channel.close or connection.close, the socket just drops.
    holder.kill()
    # Once the broker has noticed, the three are back and nobody consumes.
    wait_message_count(broker, uniq, 5, consumers=0)

    got = consume(channel, uniq, 5)
    # The returned messages go back to the head of the queue in their order.
    assert [(body, method.redelivered) for method, _, body in got] == [
        (b'm0', True), (b'm1', True), (b'm2', True), (b'm3', False), (b'm4', False)]
    for method, _, _ in got:
        channel.basic_ack(method.delivery_tag)
    wait_message_count(broker, uniq, 0)
    channel.queue_delete(queue=uniq)


def test_dropped_socket_returns_messages(broker, channel, uniq):
    """Same as above in-process: close the TCP socket under a pika connection."""
    declare(channel, uniq, 2)
    doomed = broker.connect()
    doomed_channel = doomed.channel()
    got = consume(doomed_channel, uniq, 2)
    assert [body for _, _, body in got] == [b'm0', b'm1']
    # Reach into pika's transport to cut the TCP connection with no AMQP close.
    sock = doomed._impl._transport._sock
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    wait_message_count(broker, uniq, 2, consumers=0)

    again = consume(channel, uniq, 2)
    assert [(body, method.redelivered) for method, _, body in again] == [
        (b'm0', True), (b'm1', True)]
    for method, _, _ in again:
        channel.basic_ack(method.delivery_tag)
    channel.queue_delete(queue=uniq)


def test_closed_channel_and_nack_requeue_redeliver(broker, connection, channel, uniq):
    declare(channel, uniq, 3)
    # A channel closed with unacked messages returns them.
    first = connection.channel()
    got = consume(first, uniq, 3)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b'm0', False), (b'm1', False), (b'm2', False)]
    first.close()
    again = consume(channel, uniq, 3)
    assert [(b, m.redelivered) for m, _, b in again] == [
        (b'm0', True), (b'm1', True), (b'm2', True)]
    # basic.nack with requeue and basic.reject with requeue: redelivered again;
    # reject without requeue drops the message (no dead-letter exchange set).
    m0, m1, m2 = (method.delivery_tag for method, _, _ in again)
    channel.basic_nack(m0, requeue=True)
    channel.basic_reject(m1, requeue=True)
    channel.basic_reject(m2, requeue=False)
    last = consume(channel, uniq, 2)
    assert sorted((b, m.redelivered) for m, _, b in last) == [(b'm0', True), (b'm1', True)]
    channel.basic_ack(last[-1][0].delivery_tag, multiple=True)
    wait_message_count(broker, uniq, 0)
    channel.queue_delete(queue=uniq)


def test_basic_recover_requeues_unacked(broker, channel, uniq):
    declare(channel, uniq, 2)
    got = consume(channel, uniq, 2)
    assert [m.redelivered for m, _, _ in got] == [False, False]
    channel.basic_recover(requeue=True)
    again = consume(channel, uniq, 2)
    assert sorted((b, m.redelivered) for m, _, b in again) == [(b'm0', True), (b'm1', True)]
    channel.basic_ack(0, multiple=True)
    wait_message_count(broker, uniq, 0)
    channel.queue_delete(queue=uniq)


def test_silent_consumer_is_dropped_by_heartbeat_timeout(broker, channel, uniq):
    """A consumer that stops all I/O (stuck process) misses heartbeats; the
    broker closes its connection and requeues its unacked messages."""
    declare(channel, uniq, 2)
    stuck = broker.connect(heartbeat=1)
    stuck_channel = stuck.channel()
    got = consume(stuck_channel, uniq, 2)
    assert [body for _, _, body in got] == [b'm0', b'm1']
    # No process_data_events from here on: pika neither reads nor sends
    # heartbeats. The broker must notice within a few heartbeat intervals.
    wait_message_count(broker, uniq, 2, consumers=0, timeout=10)
    again = consume(channel, uniq, 2)
    assert [(body, method.redelivered) for method, _, body in again] == [
        (b'm0', True), (b'm1', True)]
    channel.basic_ack(0, multiple=True)
    channel.queue_delete(queue=uniq)
