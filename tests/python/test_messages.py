"""Message content survives the broker exactly: properties, headers, bodies."""
import random
from datetime import datetime
from decimal import Decimal

import pika

from helpers import consume

# One header per field type pika can encode: S (str), x (bytes), t (bool),
# I (32-bit int), l / L (64-bit int beyond 32 bits, positive / negative),
# D (decimal), T (timestamp), F (table), A (array), V (void).
HEADERS = {
    'str': 'hello',
    'unicode': 'žluťoučký kůň ✓',
    'empty-str': '',
    'bytes': b'\x00\x01\xfe\xffraw',
    'true': True,
    'false': False,
    'int': 42,
    'zero': 0,
    'negative': -7,
    'int32-max': 2**31 - 1,
    'int32-min': -2**31,
    'int64-positive': 2**40 + 3,
    'int64-max': 2**63 - 1,
    'int64-negative': -(2**40) - 3,
    'decimal': Decimal('3.14'),
    'decimal-negative': Decimal('-0.001'),
    'decimal-integral': Decimal('12'),
    'timestamp': datetime(2024, 2, 29, 23, 59, 58),
    'table': {'nested': {'deeper': 'x', 'n': 1}, 'list': [1, 'two'], 'empty': {}},
    'array': ['a', 1, -2, True, None, b'b', Decimal('1.5'), {'k': 'v'}, [1, [2]], []],
    'empty-array': [],
    'void': None,
}

ALL_PROPERTIES = dict(
    content_type='application/json',
    content_encoding='gzip',
    headers=HEADERS,
    delivery_mode=2,
    priority=7,
    correlation_id='corr-42',
    reply_to='amq.gen-reply',
    expiration='60000',
    message_id='msg-42',
    timestamp=1700000000,
    type='test.event',
    # RabbitMQ rejects a user_id different from the connection's user.
    user_id='guest',
    app_id='pika-tests',
    cluster_id='cluster-9',
)
PROPERTY_NAMES = ['content_type', 'content_encoding', 'headers', 'delivery_mode', 'priority',
                  'correlation_id', 'reply_to', 'expiration', 'message_id', 'timestamp',
                  'type', 'user_id', 'app_id', 'cluster_id']


def properties_of(props):
    return {name: getattr(props, name) for name in PROPERTY_NAMES}


def test_all_fourteen_properties_round_trip(channel, uniq):
    assert sorted(PROPERTY_NAMES) == sorted(ALL_PROPERTIES)
    channel.queue_declare(queue=uniq, auto_delete=True)
    sent = pika.BasicProperties(**ALL_PROPERTIES)
    channel.basic_publish(exchange='', routing_key=uniq, body=b'{"all": true}', properties=sent)

    [(method, props, body)] = consume(channel, uniq, 1, auto_ack=True)
    assert body == b'{"all": true}'
    assert properties_of(props) == ALL_PROPERTIES
    for name, value in HEADERS.items():
        # (pika decodes 64-bit integers as its `long`, a subclass of int.)
        assert isinstance(props.headers[name], type(value)), name
    # Same values, same field types: pika encodes both identically.
    assert b''.join(props.encode()) == b''.join(sent.encode())
    assert (method.exchange, method.routing_key, method.redelivered) == ('', uniq, False)


def test_empty_properties_and_body(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=True)
    channel.basic_publish(exchange='', routing_key=uniq, body=b'')
    [(_method, props, body)] = consume(channel, uniq, 1, auto_ack=True)
    assert body == b''
    assert properties_of(props) == {name: None for name in PROPERTY_NAMES}


def test_each_property_alone(channel, uniq):
    """Every property on its own: the property flags are decoded bit by bit."""
    channel.queue_declare(queue=uniq, auto_delete=True)
    for name in PROPERTY_NAMES:
        props = pika.BasicProperties(**{name: ALL_PROPERTIES[name]})
        channel.basic_publish(exchange='', routing_key=uniq, body=name.encode(), properties=props)
    got = consume(channel, uniq, len(PROPERTY_NAMES), auto_ack=True)
    for (_method, props, body), name in zip(got, PROPERTY_NAMES):
        assert body == name.encode()
        expected = {other: None for other in PROPERTY_NAMES}
        expected[name] = ALL_PROPERTIES[name]
        assert properties_of(props) == expected, name


# frame_max is 131072 with RabbitMQ's defaults, so a body frame carries at most
# 131064 bytes: these sizes sit on both sides of the frame boundaries.
BODY_SIZES = [1, 131063, 131064, 131065, 2 * 131064, 1024 * 1024, 1024 * 1024 + 17]


def test_large_and_boundary_bodies(connection, channel, uniq):
    assert connection._impl.params.frame_max == 131072
    channel.queue_declare(queue=uniq, auto_delete=True)
    channel.confirm_delivery()
    rng = random.Random(7)
    bodies = [rng.randbytes(size) for size in BODY_SIZES]
    for body in bodies:
        channel.basic_publish(exchange='', routing_key=uniq, body=body)
    got = consume(channel, uniq, len(bodies), timeout=30, auto_ack=True)
    for (_method, _props, body), expected in zip(got, bodies):
        assert len(body) == len(expected)
        assert body == expected


def test_one_mebibyte_with_basic_get(channel, uniq):
    channel.queue_declare(queue=uniq, auto_delete=False)
    body = random.Random(1).randbytes(1024 * 1024)
    channel.basic_publish(exchange='', routing_key=uniq, body=body,
                          properties=pika.BasicProperties(content_type='application/octet-stream'))
    method, props, got = channel.basic_get(uniq, auto_ack=True)
    assert method is not None, 'basic.get found the queue empty'
    assert props.content_type == 'application/octet-stream'
    assert got == body
    channel.queue_delete(queue=uniq)
