#!/usr/bin/env python3
"""Writes each frame (and each content header's raw properties) of the
RabbitMQ 3.10.8 trace into corpus/decode/ as fuzzing seeds.

The trace lives in shared/fixtures beside the repository; WARREN_SHARED_DIR
overrides that, as for the codec's tests."""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.environ.get("WARREN_SHARED_DIR") or os.path.join(here, "../../../../shared")
trace = os.path.join(shared, "fixtures/amqp-trace-rabbitmq-3.10.8")
if not os.path.isdir(trace):
    sys.exit(f"trace not found at {trace}; set WARREN_SHARED_DIR")

out = os.path.join(here, "corpus/decode")
os.makedirs(out, exist_ok=True)
count = 0
for name, skip in (("client-to-server.bin", 8), ("server-to-client.bin", 0)):
    with open(os.path.join(trace, name), "rb") as f:
        data = f.read()[skip:]
    i = 0
    while i + 7 <= len(data):
        size = int.from_bytes(data[i + 3:i + 7], "big")
        frame = data[i:i + 8 + size]
        if len(frame) <= 4096 + 8:  # the target's frame_max
            with open(os.path.join(out, f"frame{count:03}"), "wb") as f:
                f.write(frame)
            count += 1
        if data[i] == 2:  # content header: also seed its raw properties
            with open(os.path.join(out, f"props{count:03}"), "wb") as f:
                f.write(frame[19:-1])
            count += 1
        i += 8 + size
print(f"wrote {count} seeds to {out}")
