#!/usr/bin/env python
# Tutorial 5 (Topics), producer: one message to the topic exchange
# 'topic_logs' with the given routing key.
# Our rendering of the published pika program; the only change is that the
# broker address comes from AMQP_HOST/AMQP_PORT (defaults: localhost:5672).
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))
channel = connection.channel()

channel.exchange_declare(exchange='topic_logs', exchange_type='topic')

routing_key = sys.argv[1] if len(sys.argv) > 2 else 'anonymous.info'
message = ' '.join(sys.argv[2:]) or 'Hello World!'
channel.basic_publish(
    exchange='topic_logs', routing_key=routing_key, body=message)
print(f" [x] Sent {routing_key}:{message}")
connection.close()
