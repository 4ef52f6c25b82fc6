"""Errors as pika users see them: codes, texts, and what stays usable after."""
import pika
import pytest
from pika.exceptions import (ChannelClosedByBroker, ProbableAccessDeniedError,
                             ProbableAuthenticationError)

from helpers import wait_message_count


def shortstr_text(text):
    """A reply text as RabbitMQ sends it: a shortstr holds at most 255 bytes,
    so longer texts are cut to 252 bytes and end in '...'."""
    raw = text.encode()
    return text if len(raw) <= 255 else raw[:252].decode(errors='ignore') + '...'


def closed_by_broker(action):
    """Runs `action`, which must make the broker close the channel; returns (code, text)."""
    with pytest.raises(ChannelClosedByBroker) as caught:
        action()
    return caught.value.reply_code, caught.value.reply_text


def test_passive_declare_of_missing_queue_is_404(connection, uniq):
    channel = connection.channel()
    assert closed_by_broker(lambda: channel.queue_declare(queue=uniq, passive=True)) == (
        404, f"NOT_FOUND - no queue '{uniq}' in vhost '/'")
    assert channel.is_closed
    # A channel error leaves the connection and its other channels working.
    assert connection.is_open
    other = connection.channel()
    other.queue_declare(queue=uniq, auto_delete=True)
    assert other.queue_declare(queue=uniq, passive=True).method.queue == uniq


def test_passive_declare_of_missing_exchange_is_404(channel, uniq):
    assert closed_by_broker(lambda: channel.exchange_declare(exchange=uniq, passive=True)) == (
        404, f"NOT_FOUND - no exchange '{uniq}' in vhost '/'")


def test_publish_to_missing_exchange_closes_channel_404(connection, uniq):
    channel = connection.channel()
    channel.confirm_delivery()
    assert closed_by_broker(lambda: channel.basic_publish(exchange=uniq, routing_key='k',
                                                          body=b'x')) == (
        404, f"NOT_FOUND - no exchange '{uniq}' in vhost '/'")


def test_exclusive_queue_is_locked_for_other_connections(broker, channel, uniq):
    channel.queue_declare(queue=uniq, exclusive=True)
    channel.basic_publish(exchange='', routing_key=uniq, body=b'mine')
    # This text is longer than a shortstr allows with our long queue names.
    locked = (405, shortstr_text(f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{uniq}' "
                   "in vhost '/'. It could be originally declared on another connection or the "
                   "exclusive property value does not match that of the original declaration."))
    other = broker.connect()
    try:
        attempts = [
            lambda ch: ch.queue_declare(queue=uniq),
            lambda ch: ch.queue_declare(queue=uniq, exclusive=True),
            lambda ch: ch.queue_declare(queue=uniq, passive=True),
            lambda ch: ch.basic_consume(uniq, lambda *_: None),
            lambda ch: ch.basic_get(uniq),
            lambda ch: ch.queue_delete(queue=uniq),
            lambda ch: ch.queue_purge(queue=uniq),
        ]
        for attempt in attempts:
            other_channel = other.channel()
            assert closed_by_broker(lambda: attempt(other_channel)) == locked
        # Publishing to an exclusive queue from elsewhere is allowed.
        other.channel().basic_publish(exchange='', routing_key=uniq, body=b'from other')
    finally:
        other.close()
    # The owner still has it, with both messages.
    assert channel.queue_declare(queue=uniq, passive=True).method.message_count == 2


def test_exclusive_queue_goes_away_with_its_connection(broker, uniq):
    owner = broker.connect()
    owner.channel().queue_declare(queue=uniq, exclusive=True)
    owner.close()
    probe = broker.connect()
    try:
        assert closed_by_broker(lambda: probe.channel().queue_declare(queue=uniq, passive=True))[0] \
            == 404
    finally:
        probe.close()


def test_exclusive_consumer_refuses_a_second_consumer(connection, channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True)
    channel.basic_consume(uniq, lambda *_: None, exclusive=True)
    second = connection.channel()
    assert closed_by_broker(lambda: second.basic_consume(uniq, lambda *_: None)) == (
        403, f"ACCESS_REFUSED - queue '{uniq}' in vhost '/' in exclusive use")


def test_redeclare_with_different_durable_is_406(connection, uniq):
    channel = connection.channel()
    channel.queue_declare(queue=uniq, durable=False)
    try:
        assert closed_by_broker(lambda: channel.queue_declare(queue=uniq, durable=True)) == (
            406, f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{uniq}' in "
                 "vhost '/': received 'true' but current is 'false'")
    finally:
        connection.channel().queue_delete(queue=uniq)


def test_redeclare_exchange_with_different_type_is_406(connection, uniq):
    channel = connection.channel()
    channel.exchange_declare(exchange=uniq, exchange_type='direct', auto_delete=False)
    try:
        assert closed_by_broker(lambda: channel.exchange_declare(
            exchange=uniq, exchange_type='fanout')) == (
            406, f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{uniq}' in "
                 "vhost '/': received 'fanout' but current is 'direct'")
    finally:
        connection.channel().exchange_delete(exchange=uniq)


def test_ack_of_unknown_delivery_tag_is_406(channel):
    channel.basic_ack(delivery_tag=99)
    # The ack has no reply; the next synchronous call sees the channel closed.
    assert closed_by_broker(lambda: channel.queue_declare(queue='', exclusive=True)) == (
        406, 'PRECONDITION_FAILED - unknown delivery tag 99')


def test_wrong_user_id_property_is_406(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True)
    channel.confirm_delivery()
    assert closed_by_broker(lambda: channel.basic_publish(
        exchange='', routing_key=uniq, body=b'x',
        properties=pika.BasicProperties(user_id='not-guest'))) == (
        406, "PRECONDITION_FAILED - user_id property set to 'not-guest' but authenticated "
             "user was 'guest'")


def test_wrong_password_is_403(broker, uniq):
    with pytest.raises(ProbableAuthenticationError) as caught:
        broker.connect(credentials=pika.PlainCredentials('guest', 'not-the-password'))
    assert str(caught.value.args[0]).startswith(
        "ConnectionClosedByBroker: (403) 'ACCESS_REFUSED - Login was refused using "
        "authentication mechanism PLAIN.")


def test_unknown_user_is_403(broker, uniq):
    with pytest.raises(ProbableAuthenticationError) as caught:
        broker.connect(credentials=pika.PlainCredentials(uniq, 'guest'))
    assert str(caught.value.args[0]).startswith("ConnectionClosedByBroker: (403) 'ACCESS_REFUSED")


def test_unknown_vhost_is_530(broker, uniq):
    with pytest.raises(ProbableAccessDeniedError) as caught:
        broker.connect(virtual_host=uniq)
    assert str(caught.value.args[0]) == (
        f"ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost {uniq} not found'")


def test_broker_still_serves_after_errors(broker, uniq):
    """After all of the above, a fresh connection works normally."""
    connection = broker.connect()
    try:
        channel = connection.channel()
        channel.queue_declare(queue=uniq, auto_delete=False)
        channel.basic_publish(exchange='', routing_key=uniq, body=b'ok')
        wait_message_count(broker, uniq, 1)
        channel.queue_delete(queue=uniq)
    finally:
        connection.close()
