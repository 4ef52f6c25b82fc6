#!/usr/bin/env python
# Tutorial 2 (Work Queues), producer: one persistent task to 'task_queue'.
# Our rendering of the published pika program; the only change is that the
# broker address comes from AMQP_HOST/AMQP_PORT (defaults: localhost:5672).
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.queue_declare(queue='task_queue', durable=True)

message = ' '.join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange='',
    routing_key='task_queue',
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent
    ))
print(f" [x] Sent {message}")
connection.close()
