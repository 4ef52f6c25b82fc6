#!/usr/bin/env python
# Tutorial 6 (RPC), server: answers fib(n) requests from 'rpc_queue' to the
# request's reply_to queue, echoing its correlation_id.
# Our rendering of the published pika program. Changes: the broker address
# comes from AMQP_HOST/AMQP_PORT, and TUTORIAL_STOP_AFTER=N (test hook) stops
# after N requests because the published program loops forever.
import os

import pika

connection = pika.BlockingConnection(
    pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                              port=int(os.environ.get('AMQP_PORT', '5672'))))

channel = connection.channel()

channel.queue_declare(queue='rpc_queue')

stop_after = int(os.environ.get('TUTORIAL_STOP_AFTER', '0'))
served = 0


def fib(n):
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


def on_request(ch, method, props, body):
    global served
    n = int(body)

    print(f" [.] fib({n})")
    response = fib(n)

    ch.basic_publish(exchange='',
                     routing_key=props.reply_to,
                     properties=pika.BasicProperties(correlation_id=props.correlation_id),
                     body=str(response))
    ch.basic_ack(delivery_tag=method.delivery_tag)
    served += 1
    if served == stop_after:
        ch.stop_consuming()


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue='rpc_queue', on_message_callback=on_request)

print(" [x] Awaiting RPC requests")
channel.start_consuming()
connection.close()
