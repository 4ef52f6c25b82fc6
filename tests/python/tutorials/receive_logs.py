#!/usr/bin/env python
# Tutorial 3 (Publish/Subscribe), consumer: a server-named exclusive queue
# bound to the fanout 'logs'.
# Our rendering of the published pika program. Changes: the broker address
# comes from AMQP_HOST/AMQP_PORT, and TUTORIAL_STOP_AFTER=N (test hook) stops
# consuming after N messages because the published program loops forever.
import os

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.exchange_declare(exchange='logs', exchange_type='fanout')

result = channel.queue_declare(queue='', exclusive=True)
queue_name = result.method.queue

channel.queue_bind(exchange='logs', queue=queue_name)

print(' [*] Waiting for logs. To exit press CTRL+C')

stop_after = int(os.environ.get('TUTORIAL_STOP_AFTER', '0'))
received = 0


def callback(ch, method, properties, body):
    global received
    print(f" [x] {body}")
    received += 1
    if received == stop_after:
        ch.stop_consuming()


channel.basic_consume(
    queue=queue_name, on_message_callback=callback, auto_ack=True)

channel.start_consuming()
connection.close()
