#!/usr/bin/env python
# Test client: consumes from a queue without ever acking and then waits to be
# killed, so a test can check what happens to its unacked messages.
#
# usage: hold_consumer.py QUEUE PREFETCH HOLD
# Prints " [x] <body> redelivered=<bool>" per delivery and " [*] holding"
# once HOLD messages are in hand. Broker address from AMQP_HOST/AMQP_PORT.
import os
import sys
import time

import pika


def main():
    queue, prefetch, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                                  port=int(os.environ.get('AMQP_PORT', '5672'))))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    held = 0
    for method, _props, body in channel.consume(queue, auto_ack=False):
        print(f" [x] {body.decode()} redelivered={method.redelivered}")
        held += 1
        if held == hold:
            break
    print(" [*] holding")
    # Keep the connection (and so the unacked deliveries) open until killed;
    # short sleeps so heartbeats are still answered.
    while True:
        connection.process_data_events(time_limit=0.2)
        time.sleep(0.05)


if __name__ == '__main__':
    main()
