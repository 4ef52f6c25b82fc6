#!/usr/bin/env python
# Tutorial 2 (Work Queues), worker: one task at a time (prefetch 1), one
# second of "work" per dot in the body, ack when done.
# Our rendering of the published pika program. Changes: the broker address
# comes from AMQP_HOST/AMQP_PORT, and TUTORIAL_STOP_AFTER=N (test hook) stops
# consuming after N messages because the published program loops forever.
import os
import time

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.queue_declare(queue='task_queue', durable=True)
print(' [*] Waiting for messages. To exit press CTRL+C')

stop_after = int(os.environ.get('TUTORIAL_STOP_AFTER', '0'))
handled = 0


def callback(ch, method, properties, body):
    global handled
    print(f" [x] Received {body.decode()}")
    time.sleep(body.count(b'.'))
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)
    handled += 1
    if handled == stop_after:
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='task_queue', on_message_callback=callback)

channel.start_consuming()
connection.close()
