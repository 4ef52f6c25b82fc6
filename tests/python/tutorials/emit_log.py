#!/usr/bin/env python
# Tutorial 3 (Publish/Subscribe), producer: one message to the fanout 'logs'.
# Our rendering of the published pika program; the only change is that the
# broker address comes from AMQP_HOST/AMQP_PORT (defaults: localhost:5672).
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.exchange_declare(exchange='logs', exchange_type='fanout')

message = ' '.join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange='logs', routing_key='', body=message)
print(f" [x] Sent {message}")
connection.close()
