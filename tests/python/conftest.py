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


def spawn_warren(binary, data_dir):
    """Starts `warren serve` on ephemeral ports with its data in `data_dir`."""
    stderr_path = data_dir / f'warren.{time.monotonic_ns()}.stderr'
    with open(stderr_path, 'w') as stderr:
        proc = subprocess.Popen(
            [str(binary), 'serve', '--amqp-listen', '127.0.0.1:0',
             '--http-listen', '127.0.0.1:0', '--cluster-listen', '127.0.0.1:0',
             '--data-dir', str(data_dir / 'data')],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
    addr, lines = read_listening_line(proc, time.monotonic() + STARTUP_DEADLINE)
    if addr is None:
        stop(proc)
        tail = stderr_path.read_text()[-4000:]
        pytest.fail(f'{binary} did not print "warren listening: amqp=..." within '
                    f'{STARTUP_DEADLINE}s (exit code {proc.returncode}); '
                    f'stdout: {lines!r}; stderr tail:\n{tail}', pytrace=False)
    process = WarrenProcess(proc, stderr_path)
    process.addr = addr
    return process


def require_binary():
    binary = warren_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f'Warren binary not found at {binary}: build it (cargo build -p warren), '
                    'or set WARREN_BIN, or set WARREN_TEST_BROKER=host:port', pytrace=False)
    return binary


@pytest.fixture(scope='session')
def warren():
    """The Warren process under test, or None with WARREN_TEST_BROKER set."""
    if os.environ.get('WARREN_TEST_BROKER'):
        yield None
        return
    binary = require_binary()
    with tempfile.TemporaryDirectory(prefix='warren-pika-') as data_dir:
        process = spawn_warren(binary, Path(data_dir))
        try:
            yield process
        finally:
            stop(process.proc)


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


class RestartableBroker:
    """A broker of the test's own that can be restarted on the same data.

    Warren: a fresh node per test; `restart` stops it with ctrl-c, `crash`
    SIGKILLs it, and both start it again on the same data directory (on new
    ephemeral ports, so read `.broker` again afterwards). External broker:
    WARREN_TEST_RESTART_BROKER=host:port with WARREN_TEST_RESTART_CMD and
    WARREN_TEST_CRASH_CMD, shell commands that return once it serves again
    (see rabbitmq_scratch_node.sh).
    """

    def __init__(self, data_dir=None):
        self.data_dir = data_dir
        self.process = None
        external = os.environ.get('WARREN_TEST_RESTART_BROKER')
        if data_dir is None:
            host, _, port = external.rpartition(':')
            self.broker = Broker(host or '127.0.0.1', int(port))
        else:
            self.binary = require_binary()
            self._start()

    def _start(self):
        self.process = spawn_warren(self.binary, self.data_dir)
        self.broker = Broker(*self.process.addr)

    def _run(self, variable):
        command = os.environ.get(variable)
        if not command:
            pytest.skip(f'{variable} is not set for the external restart broker')
        subprocess.run(command, shell=True, check=True, timeout=180)

    def restart(self):
        if self.process is None:
            return self._run('WARREN_TEST_RESTART_CMD')
        stop(self.process.proc)
        self._start()

    def crash(self):
        if self.process is None:
            return self._run('WARREN_TEST_CRASH_CMD')
        self.process.proc.kill()
        self.process.proc.wait(timeout=10)
        self._start()

    def close(self):
        if self.process is not None:
            stop(self.process.proc)


@pytest.fixture
def restartable():
    if os.environ.get('WARREN_TEST_BROKER'):
        if not os.environ.get('WARREN_TEST_RESTART_BROKER'):
            pytest.skip('restart tests need WARREN_TEST_RESTART_BROKER with an external broker')
        node = RestartableBroker()
        yield node
        return
    with tempfile.TemporaryDirectory(prefix='warren-pika-restart-') as data_dir:
        node = RestartableBroker(Path(data_dir))
        try:
            yield node
        finally:
            node.close()
