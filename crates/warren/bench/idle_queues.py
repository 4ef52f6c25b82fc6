"""Declares N durable quorum queues (idle: nothing published) through one
connection, for the idle-queue cost row of BENCHMARKS.md.

Usage: python idle_queues.py AMQP_URI N [PREFIX]
"""
import sys
import time

import pika


def main() -> None:
    uri, n = sys.argv[1], int(sys.argv[2])
    prefix = sys.argv[3] if len(sys.argv) > 3 else "idle"
    conn = pika.BlockingConnection(pika.URLParameters(uri))
    ch = conn.channel()
    start = time.monotonic()
    for i in range(n):
        ch.queue_declare(
            f"{prefix}-{i}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} declared after {time.monotonic() - start:.1f} s", flush=True)
    print(f"declared {n} in {time.monotonic() - start:.1f} s", flush=True)
    conn.close()


if __name__ == "__main__":
    main()
