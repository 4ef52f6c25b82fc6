"""pytest harness: yields the broker the pika tests talk to.

WARREN_TEST_BROKER=host:port points the suite at a running broker (that is how
the tests are validated against RabbitMQ). Otherwise one Warren node is started
for the session from WARREN_BIN (default: $CARGO_TARGET_DIR/debug/warren, else
<repo>/target/debug/warren) on ephemeral ports, and stopped at the end.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers import TUTORIALS, Broker, Program

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 15
LISTENING = re.compile(r'^warren listening: .*\bamqp=(\S+):(\d+)')


def warren_binary():
    if os.environ.get('WARREN_BIN'):
        return Path(os.environ['WARREN_BIN'])
    target = os.environ.get('CARGO_TARGET_DIR')
    base = Path(target) if target else REPO / 'target'
    return base / 'debug' / 'warren'


def read_listening_line(proc, deadline):
    """The (host, port) from Warren's `warren listening:` line, or None."""
    lines = []
    found = {}

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip('\n'))
            match = LISTENING.match(line)
            if match and not found:
                found['addr'] = (match.group(1), int(match.group(2)))
        # Keep reading after the match (above) so the pipe never fills.

    threading.Thread(target=pump, daemon=True).start()
    while time.monotonic() < deadline and proc.poll() is None and not found:
        time.sleep(0.05)
    return found.get('addr'), lines


def stop(proc):
    if proc.poll() is None:
        # warren serve shuts down on ctrl-c; SIGKILL if it does not.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class WarrenProcess:
    """The spawned server, so each test can check it neither died nor panicked."""

    def __init__(self, proc, stderr_path):
        self.proc = proc
        self.stderr_path = stderr_path

    def stderr_size(self):
        return self.stderr_path.stat().st_size

    def stderr_since(self, offset):
        with open(self.stderr_path, 'rb') as log:
            log.seek(offset)
            return log.read().decode(errors='replace')


@pytest.fixture(scope='session')
def warren():
    """The Warren process under test, or None with WARREN_TEST_BROKER set."""
    if os.environ.get('WARREN_TEST_BROKER'):
        yield None
        return
    binary = warren_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f'Warren binary not found at {binary}: build it (cargo build -p warren), '
                    'or set WARREN_BIN, or set WARREN_TEST_BROKER=host:port', pytrace=False)
    with tempfile.TemporaryDirectory(prefix='warren-pika-') as data_dir:
        stderr_path = Path(data_dir) / 'warren.stderr'
        with open(stderr_path, 'w') as stderr:
            proc = subprocess.Popen(
                [str(binary), 'serve', '--amqp-listen', '127.0.0.1:0',
                 '--http-listen', '127.0.0.1:0', '--cluster-listen', '127.0.0.1:0',
                 '--data-dir', str(Path(data_dir) / 'data')],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
            try:
                addr, lines = read_listening_line(proc, time.monotonic() + STARTUP_DEADLINE)
                if addr is None:
                    stop(proc)
                    tail = stderr_path.read_text()[-4000:]
                    pytest.fail(f'{binary} did not print "warren listening: amqp=..." within '
                                f'{STARTUP_DEADLINE}s (exit code {proc.returncode}); '
                                f'stdout: {lines!r}; stderr tail:\n{tail}', pytrace=False)
                process = WarrenProcess(proc, stderr_path)
                process.addr = addr
                yield process
            finally:
                stop(proc)


@pytest.fixture(scope='session')
def broker(warren):
    external = os.environ.get('WARREN_TEST_BROKER')
    if external:
        host, _, port = external.rpartition(':')
        return Broker(host or '127.0.0.1', int(port))
    return Broker(*warren.addr)


@pytest.fixture(autouse=True)
def server_health(warren):
    """Fails a test during which the spawned Warren died or logged a panic."""
    if warren is None:
        yield
        return
    offset = warren.stderr_size()
    yield
    log = warren.stderr_since(offset)
    if warren.proc.poll() is not None:
        pytest.fail(f'warren exited with code {warren.proc.returncode} during this test; '
                    f'stderr:\n{log[-4000:]}', pytrace=False)
    if 'panicked' in log:
        pytest.fail(f'warren panicked during this test:\n{log[-4000:]}', pytrace=False)


@pytest.fixture
def uniq(request):
    """A name prefix unique to this test run, so tests can share a broker."""
    return f'pika-test.{request.node.name}.{uuid.uuid4().hex[:8]}'


@pytest.fixture
def connection(broker):
    conn = broker.connect()
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def channel(connection):
    return connection.channel()


@pytest.fixture
def programs(broker):
    """Starts tutorial programs against the broker; kills leftovers at the end."""
    started = []

    def run(name, *args, env=None, directory=TUTORIALS):
        full_env = broker.env()
        full_env.update(env or {})
        program = Program(directory / name, [str(a) for a in args], full_env)
        started.append(program)
        return program

    yield run
    for program in started:
        program.kill()
