"""The seven RabbitMQ tutorials, run as published (see tutorials/).

Each test runs the consumers first, waits until they say they are ready, runs
the producers, and checks the consumers printed exactly what was sent. The
tutorials use fixed names ('hello', 'task_queue', 'logs', ...), so tests
that use a named queue delete it first to start from a known state.
"""
import re
import time

from helpers import wait_message_count


def delete_queue(broker, name):
    connection = broker.connect()
    try:
        connection.channel().queue_delete(queue=name)
    finally:
        connection.close()


def received_bodies(lines, prefix=r' \[x\] '):
    """Bodies (as printed by the tutorials, e.g. "b'...'") from output lines."""
    return [line[len(' [x] '):] for line in lines if re.match(prefix, line)]


def test_1_hello_world(broker, programs):
    delete_queue(broker, 'hello')
    receiver = programs('receive.py', env={'TUTORIAL_STOP_AFTER': '1'})
    receiver.wait_for(r'Waiting for messages')

    sent = programs('send.py').finish()
    assert sent == [" [x] Sent 'Hello World!'"]

    lines = receiver.finish()
    assert received_bodies(lines) == ["Received b'Hello World!'"]
    wait_message_count(broker, 'hello', 0)


def test_2_work_queues(broker, programs):
    delete_queue(broker, 'task_queue')
    tasks = ['First message.', 'Second message..', 'Third message.', 'Fourth message.',
             'Fifth message.', 'Sixth message', 'Seventh message', 'Eighth message']
    workers = [programs('worker.py') for _ in range(2)]
    for worker in workers:
        worker.wait_for(r'Waiting for messages')

    for task in tasks:
        assert programs('new_task.py', *task.split(' ')).finish() == [f' [x] Sent {task}']

    # Workers loop forever; read both outputs until every task is done.
    done = _collect_done(workers, len(tasks), timeout=30)
    handled = done[0] + done[1]
    assert sorted(handled) == sorted(tasks), 'every task handled exactly once'
    # Prefetch 1 and round-robin dispatch: both workers get work.
    assert done[0] and done[1], f'one worker got everything: {done!r}'
    for worker in workers:
        worker.kill()
    # Every task was acked, so nothing is left (durable queue, persistent tasks).
    wait_message_count(broker, 'task_queue', 0)


def _collect_done(workers, total, timeout):
    """Per worker, the tasks it printed ' [x] Received X' and then ' [x] Done' for."""
    deadline = time.monotonic() + timeout
    current = [None] * len(workers)
    done = [[] for _ in workers]
    while sum(len(tasks) for tasks in done) < total:
        if time.monotonic() > deadline:
            raise AssertionError(f'workers finished only {done!r} within {timeout}s')
        for index, worker in enumerate(workers):
            try:
                line = worker.out.next_line(time.monotonic() + 0.05)
            except TimeoutError:
                continue
            assert line is not None, f'worker {index} exited: {worker.stderr()}'
            received = re.match(r'^ \[x\] Received (.*)$', line)
            if received:
                assert current[index] is None, f'worker {index} took two tasks at once'
                current[index] = received.group(1)
            elif line == ' [x] Done':
                done[index].append(current[index])
                current[index] = None
    return done


def test_3_publish_subscribe(broker, programs):
    messages = ['info: first', 'warning: second', 'error: third']
    receivers = [programs('receive_logs.py', env={'TUTORIAL_STOP_AFTER': str(len(messages))})
                 for _ in range(2)]
    for receiver in receivers:
        receiver.wait_for(r'Waiting for logs')

    for message in messages:
        assert programs('emit_log.py', *message.split(' ')).finish() == [f' [x] Sent {message}']

    expected = [f"b'{message}'" for message in messages]
    for receiver in receivers:
        # Both temporary queues are bound to the fanout: each gets every message.
        assert received_bodies(receiver.finish()) == expected


def test_4_routing(broker, programs):
    sends = [('info', 'Run. Run. Or it will explode.'), ('warning', 'disk at 85%'),
             ('error', 'disk full'), ('debug', 'nobody listens to debug'),
             ('info', 'second info')]
    want_errors = [(s, m) for s, m in sends if s in ('warning', 'error')]
    want_all = [(s, m) for s, m in sends if s in ('info', 'warning', 'error')]
    # The sentinel reaches both receivers last: anything unexpected before it
    # would show up in their output before they stop.
    sentinel = ('error', 'sentinel')
    errors = programs('receive_logs_direct.py', 'warning', 'error',
                      env={'TUTORIAL_STOP_AFTER': str(len(want_errors) + 1)})
    everything = programs('receive_logs_direct.py', 'info', 'warning', 'error',
                          env={'TUTORIAL_STOP_AFTER': str(len(want_all) + 1)})
    for receiver in (errors, everything):
        receiver.wait_for(r'Waiting for logs')

    for severity, message in sends + [sentinel]:
        out = programs('emit_log_direct.py', severity, *message.split(' ')).finish()
        assert out == [f' [x] Sent {severity}:{message}']

    assert received_bodies(errors.finish()) == [
        f"{s}:b'{m}'" for s, m in want_errors + [sentinel]]
    assert received_bodies(everything.finish()) == [
        f"{s}:b'{m}'" for s, m in want_all + [sentinel]]


def test_4_routing_usage_error(programs):
    program = programs('receive_logs_direct.py')
    program.proc.wait(timeout=30)
    assert program.proc.returncode == 1
    assert 'Usage:' in program.stderr()


# Routing keys and which binding sets they reach. Q1 and Q2 are the
# tutorial's own example; the others add '#', '' and more wildcard positions.
# The last key reaches every receiver, so a wrong extra delivery of any earlier
# key shows up in some receiver's output before it stops.
TOPIC_CASES = [
    ('quick.orange.rabbit', {'Q1', 'Q2', 'ALL'}),
    ('lazy.orange.elephant', {'Q1', 'Q2', 'ALL'}),
    ('quick.orange.fox', {'Q1', 'ALL', 'KERN'}),
    ('lazy.brown.fox', {'Q2', 'ALL', 'KERN'}),
    # Matches two of Q2's bindings but is delivered to Q2 only once.
    ('lazy.pink.rabbit', {'Q2', 'ALL'}),
    ('quick.brown.fox', {'ALL', 'KERN'}),
    ('orange', {'ALL'}),
    ('quick.orange.new.rabbit', {'ALL'}),
    ('lazy.orange.new.rabbit', {'Q2', 'ALL'}),
    ('kern.critical', {'ALL', 'KERN', 'CRIT'}),
    ('kern', {'ALL', 'KERN'}),
    ('a.critical', {'ALL', 'CRIT'}),
    ('x.y.critical', {'ALL'}),
    ('', {'ALL', 'KERN'}),
    ('lazy.orange.critical', {'Q1', 'Q2', 'ALL', 'KERN', 'CRIT'}),
]
TOPIC_BINDINGS = {
    'Q1': ['*.orange.*'],
    'Q2': ['*.*.rabbit', 'lazy.#'],
    'ALL': ['#'],
    'KERN': ['kern.#', '#.fox', '', 'lazy.*.critical'],
    'CRIT': ['*.critical', 'lazy.orange.critical'],
}


def test_5_topics(broker, programs):
    expected = {name: [key for key, targets in TOPIC_CASES if name in targets]
                for name in TOPIC_BINDINGS}
    receivers = {name: programs('receive_logs_topic.py', *keys,
                                env={'TUTORIAL_STOP_AFTER': str(len(expected[name]))})
                 for name, keys in TOPIC_BINDINGS.items()}
    for receiver in receivers.values():
        receiver.wait_for(r'Waiting for logs')

    for key, _targets in TOPIC_CASES:
        # emit_log_topic.py only takes the key when a message follows it.
        out = programs('emit_log_topic.py', key, f'to {key}').finish()
        assert out == [f' [x] Sent {key}:to {key}']

    for name, receiver in receivers.items():
        got = received_bodies(receiver.finish())
        assert got == [f"{key}:b'to {key}'" for key in expected[name]], name


def test_5_topics_default_key(programs):
    receiver = programs('receive_logs_topic.py', 'anonymous.*', env={'TUTORIAL_STOP_AFTER': '1'})
    receiver.wait_for(r'Waiting for logs')
    assert programs('emit_log_topic.py').finish() == [' [x] Sent anonymous.info:Hello World!']
    assert received_bodies(receiver.finish()) == ["anonymous.info:b'Hello World!'"]


def test_6_rpc(broker, programs):
    delete_queue(broker, 'rpc_queue')
    server = programs('rpc_server.py', env={'TUTORIAL_STOP_AFTER': '2'})
    server.wait_for(r'Awaiting RPC requests')

    for _ in range(2):
        client = programs('rpc_client.py')
        assert client.finish(timeout=60) == [' [x] Requesting fib(30)', ' [.] Got 832040']
    assert server.finish() == [' [x] Awaiting RPC requests', ' [.] fib(30)', ' [.] fib(30)']
    wait_message_count(broker, 'rpc_queue', 0)


COUNT = 500


def test_7_publisher_confirms(broker, programs, channel):
    lines = programs('publisher_confirms.py',
                     env={'PUBLISHER_CONFIRMS_COUNT': str(COUNT)}).finish(timeout=90)
    queues = [line.split()[-1] for line in lines if line.startswith(' [x] queue ')]
    reports = [line for line in lines if line.startswith('Published')]
    assert len(queues) == 3
    assert [re.sub(r'in [\d,]+ ms', 'in T ms', line) for line in reports] == [
        f'Published {COUNT} messages individually in T ms',
        f'Published {COUNT} messages in batch in T ms',
        f'Published {COUNT} messages and handled confirms asynchronously in T ms',
    ]
    try:
        for name in queues:
            # Confirmed means enqueued: every message is there, in order. The
            # queues are auto-delete but never had a consumer, so they stay.
            wait_message_count(broker, name, COUNT)
            method, _props, body = channel.basic_get(name, auto_ack=True)
            assert body == b'0' and method.message_count == COUNT - 1
    finally:
        for name in queues:
            channel.queue_delete(queue=name)
