"""Shared helpers for the pika compatibility tests.

Everything here waits with a deadline: a broker that never answers must make
a test fail, not hang the suite.
"""
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pika

HERE = Path(__file__).resolve().parent
TUTORIALS = HERE / 'tutorials'
CLIENTS = HERE / 'clients'


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    def params(self, **overrides):
        """Connection parameters for guest/guest on vhost '/'.

        socket/stack timeouts bound the handshake; blocked_connection_timeout
        bounds a broker that blocks us with connection.blocked forever.
        """
        kwargs = dict(host=self.host, port=self.port,
                      credentials=pika.PlainCredentials('guest', 'guest'),
                      connection_attempts=1, socket_timeout=5, stack_timeout=15,
                      blocked_connection_timeout=30)
        kwargs.update(overrides)
        return pika.ConnectionParameters(**kwargs)

    def connect(self, **overrides):
        return pika.BlockingConnection(self.params(**overrides))

    def env(self):
        """Environment for a tutorial subprocess pointed at this broker."""
        env = dict(os.environ)
        env['AMQP_HOST'] = self.host
        env['AMQP_PORT'] = str(self.port)
        env['PYTHONUNBUFFERED'] = '1'
        return env


class LineReader:
    """Collects a pipe's lines on a daemon thread so reads can time out."""

    def __init__(self, stream):
        self._lines = queue.Queue()
        self.seen = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        for line in stream:
            self._lines.put(line.rstrip('\n'))
        self._lines.put(None)

    def next_line(self, deadline):
        """The next line, None at end of stream; raises TimeoutError at deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            line = self._lines.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, pattern, timeout):
        """Consume lines until one matches `pattern`; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            try:
                line = self.next_line(deadline)
            except TimeoutError:
                raise AssertionError(
                    f'no line matching {pattern!r} within {timeout}s; saw {self.seen!r}') from None
            if line is None:
                raise AssertionError(
                    f'stream ended before a line matching {pattern!r}; saw {self.seen!r}')
            found = regex.search(line)
            if found:
                return found

    def drain(self, timeout):
        """All remaining lines until end of stream (within `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.next_line(deadline) is None:
                    return list(self.seen)
            except TimeoutError:
                raise AssertionError(
                    f'stream still open after {timeout}s; saw {self.seen!r}') from None


class Program:
    """A Python program (tutorial or helper client) run as a subprocess."""

    def __init__(self, script, args, env):
        self.script = script
        self.proc = subprocess.Popen(
            [sys.executable, '-u', str(script), *args], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.out = LineReader(self.proc.stdout)
        self.err = LineReader(self.proc.stderr)

    def wait_for(self, pattern, timeout=15):
        try:
            return self.out.wait_for(pattern, timeout)
        except AssertionError as failure:
            raise AssertionError(f'{self.script.name}: {failure}; stderr: {self.stderr()}') from None

    def finish(self, timeout=30):
        """Wait for a clean exit; return all stdout lines."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f'{self.script.name} did not exit within {timeout}s; '
                f'stdout: {self.out.seen!r}; stderr: {self.stderr()}') from None
        lines = self.out.drain(5)
        assert self.proc.returncode == 0, (
            f'{self.script.name} exited with {self.proc.returncode}; '
            f'stdout: {lines!r}; stderr: {self.stderr()}')
        return lines

    def stderr(self):
        # Give the pump a moment to collect the tail of a dead process.
        if self.proc.poll() is not None:
            try:
                self.err.drain(2)
            except AssertionError:
                pass
        return '\n'.join(self.err.seen)

    def kill(self):
        """SIGKILL: the OS closes the sockets without any AMQP goodbye."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def consume(channel, queue_name, count, timeout=10, auto_ack=False):
    """Exactly `count` deliveries from `queue_name` as (method, props, body).

    The consumer is cancelled afterwards (unacked messages stay unacked).
    """
    got = []
    deadline = time.monotonic() + timeout
    for method, props, body in channel.consume(queue_name, auto_ack=auto_ack,
                                               inactivity_timeout=0.2):
        if method is not None:
            got.append((method, props, body))
            if len(got) == count:
                break
        elif time.monotonic() > deadline:
            break
    channel.cancel()
    assert len(got) == count, (
        f'expected {count} messages from {queue_name!r} within {timeout}s, got {len(got)}: '
        f'{[body for _, _, body in got]!r}')
    return got


def assert_no_more(channel, queue_name, wait=0.5):
    """Nothing else is delivered from `queue_name` within `wait` seconds."""
    extra = []
    deadline = time.monotonic() + wait
    for method, _props, body in channel.consume(queue_name, auto_ack=False,
                                                inactivity_timeout=0.1):
        if method is not None:
            extra.append(body)
        if time.monotonic() > deadline:
            break
    channel.cancel()
    assert extra == [], f'unexpected extra messages from {queue_name!r}: {extra!r}'


def queue_counts(broker, queue_name):
    """(ready messages, consumers) from a passive declare on a fresh connection."""
    connection = broker.connect()
    try:
        ok = connection.channel().queue_declare(queue=queue_name, passive=True)
        return ok.method.message_count, ok.method.consumer_count
    finally:
        connection.close()


def wait_message_count(broker, queue_name, expected, timeout=5, consumers=None):
    """Polls until the queue reports `expected` ready messages (and, if given,
    `consumers` consumers).

    Publishes, acks, requeues and a dead peer's cleanup are asynchronous (no
    reply), so a count read right after them may lag; the broker must settle
    on the value in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        messages, consumer_count = queue_counts(broker, queue_name)
        if messages == expected and consumers in (None, consumer_count):
            return
        assert time.monotonic() < deadline, (
            f'queue {queue_name!r} has {messages} ready messages and {consumer_count} '
            f'consumers, expected {expected} and {consumers}')
        time.sleep(0.05)
