#!/usr/bin/env python
# Tutorial 4 (Routing), consumer: a server-named exclusive queue bound to
# 'direct_logs' once per severity given on the command line.
# Our rendering of the published pika program. Changes: the broker address
# comes from AMQP_HOST/AMQP_PORT, and TUTORIAL_STOP_AFTER=N (test hook) stops
# consuming after N messages because the published program loops forever.
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.exchange_declare(exchange='direct_logs', exchange_type='direct')

result = channel.queue_declare(queue='', exclusive=True)
queue_name = result.method.queue

severities = sys.argv[1:]
if not severities:
    sys.stderr.write("Usage: %s [info] [warning] [error]\n" % sys.argv[0])
    sys.exit(1)

for severity in severities:
    channel.queue_bind(
        exchange='direct_logs', queue=queue_name, routing_key=severity)

print(' [*] Waiting for logs. To exit press CTRL+C')

stop_after = int(os.environ.get('TUTORIAL_STOP_AFTER', '0'))
received = 0


def callback(ch, method, properties, body):
    global received
    print(f" [x] {method.routing_key}:{body}")
    received += 1
    if received == stop_after:
        ch.stop_consuming()


channel.basic_consume(
    queue=queue_name, on_message_callback=callback, auto_ack=True)

channel.start_consuming()
connection.close()
