#!/usr/bin/env python
# Tutorial 1 ("Hello World!"), consumer: prints every message of 'hello'.
# Our rendering of the published pika program. Changes: the broker address
# comes from AMQP_HOST/AMQP_PORT, and TUTORIAL_STOP_AFTER=N (test hook) stops
# consuming after N messages because the published program loops forever.
import os
import sys

import pika


def main():
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                                  port=int(os.environ.get('AMQP_PORT', '5672'))))
    channel = connection.channel()

    channel.queue_declare(queue='hello')

    stop_after = int(os.environ.get('TUTORIAL_STOP_AFTER', '0'))
    received = [0]

    def callback(ch, method, properties, body):
        print(f" [x] Received {body}")
        received[0] += 1
        if received[0] == stop_after:
            ch.stop_consuming()

    channel.basic_consume(queue='hello', on_message_callback=callback, auto_ack=True)

    print(' [*] Waiting for messages. To exit press CTRL+C')
    channel.start_consuming()
    connection.close()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        print('Interrupted')
        try:
            sys.exit(0)
        except SystemExit:
            os._exit(0)
