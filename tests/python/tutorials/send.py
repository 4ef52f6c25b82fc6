#!/usr/bin/env python
# Tutorial 1 ("Hello World!"), producer: one message to the queue 'hello'.
# Our rendering of the published pika program; the only change is that the
# broker address comes from AMQP_HOST/AMQP_PORT (defaults: localhost:5672).
import os

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.queue_declare(queue='hello')

channel.basic_publish(exchange='', routing_key='hello', body='Hello World!')
print(" [x] Sent 'Hello World!'")
connection.close()
