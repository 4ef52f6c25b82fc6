#!/usr/bin/env python
# Tutorial 7 (Publisher Confirms), pika variant.
#
# RabbitMQ publishes tutorial 7 for Java, .NET, Go, PHP and others but not for
# pika, so this is our own pika program with the same three strategies:
#   1. publish messages individually, waiting for each confirm
#      (BlockingConnection with confirm_delivery: basic_publish returns only
#      once the broker has confirmed the message);
#   2. publish in batches of 100 and wait for the whole batch to be confirmed;
#   3. publish everything and handle confirms asynchronously, tracking the
#      outstanding delivery tags (acks may cover many tags with multiple=True).
# 2 and 3 use SelectConnection, since a BlockingChannel in confirm mode always
# waits per message.
#
# As in the published tutorial each strategy publishes to its own fresh
# (non-durable, auto-delete) queue and reports the time taken. The broker
# address comes from AMQP_HOST/AMQP_PORT (defaults: localhost:5672) and the
# message count from PUBLISHER_CONFIRMS_COUNT (default 50,000 as published);
# it also prints each queue's name so a test can inspect it.
import os
import sys
import time
import uuid

import pika

MESSAGE_COUNT = int(os.environ.get('PUBLISHER_CONFIRMS_COUNT', '50000'))
BATCH_SIZE = 100
TIMEOUT_SECONDS = 60


def parameters():
    return pika.ConnectionParameters(host=os.environ.get('AMQP_HOST', 'localhost'),
                                     port=int(os.environ.get('AMQP_PORT', '5672')))


def publish_messages_individually():
    connection = pika.BlockingConnection(parameters())
    channel = connection.channel()
    queue = str(uuid.uuid4())
    channel.queue_declare(queue=queue, durable=False, exclusive=False, auto_delete=True)
    print(f" [x] queue {queue}")
    channel.confirm_delivery()

    start = time.monotonic()
    for i in range(MESSAGE_COUNT):
        # Raises NackError/UnroutableError if the broker does not confirm.
        channel.basic_publish(exchange='', routing_key=queue, body=str(i))
    elapsed_ms = int((time.monotonic() - start) * 1000)
    print(f"Published {MESSAGE_COUNT:,} messages individually in {elapsed_ms:,} ms")
    connection.close()


class AsyncConfirmPublisher(object):
    """Publishes MESSAGE_COUNT messages on a SelectConnection in confirm mode.

    With batch_size set, it publishes that many messages and waits until all
    of them are confirmed before the next batch; without, it publishes
    everything at once and settles confirms as they arrive.
    """

    def __init__(self, batch_size=None):
        self.batch_size = batch_size
        self.queue = str(uuid.uuid4())
        self.outstanding = {}
        self.next_tag = 1
        self.published = 0
        self.nacked = 0
        self.error = None
        self.start = None
        self.channel = None
        self.connection = pika.SelectConnection(
            parameters(),
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_failure,
            on_close_callback=self.on_connection_closed)

    def run(self):
        self.connection.ioloop.call_later(TIMEOUT_SECONDS, self.on_timeout)
        self.connection.ioloop.start()
        if self.error is not None:
            raise RuntimeError(self.error)

    def on_failure(self, _connection, error):
        self.error = f"connection failed: {error!r}"
        self.connection.ioloop.stop()

    def on_connection_closed(self, _connection, reason):
        if self.error is None and (self.outstanding or self.published < MESSAGE_COUNT):
            self.error = f"connection closed early: {reason!r}"
        self.connection.ioloop.stop()

    def on_timeout(self):
        self.error = f"timed out with {len(self.outstanding)} unconfirmed messages"
        self.connection.close()

    def on_connection_open(self, connection):
        connection.channel(on_open_callback=self.on_channel_open)

    def on_channel_open(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        channel.queue_declare(queue=self.queue, durable=False, exclusive=False,
                              auto_delete=True, callback=self.on_queue_declared)

    def on_channel_closed(self, _channel, reason):
        if self.error is None and self.outstanding:
            self.error = f"channel closed early: {reason!r}"
        if not self.connection.is_closed and not self.connection.is_closing:
            self.connection.close()

    def on_queue_declared(self, _frame):
        print(f" [x] queue {self.queue}")
        self.channel.confirm_delivery(self.on_confirm, callback=self.on_confirm_selected)

    def on_confirm_selected(self, _frame):
        self.start = time.monotonic()
        self.publish_some()

    def publish_some(self):
        remaining = MESSAGE_COUNT - self.published
        count = remaining if self.batch_size is None else min(self.batch_size, remaining)
        for _ in range(count):
            body = str(self.published)
            self.channel.basic_publish(exchange='', routing_key=self.queue, body=body)
            self.outstanding[self.next_tag] = body
            self.next_tag += 1
            self.published += 1
        self.maybe_finish()

    def on_confirm(self, frame):
        method = frame.method
        if method.NAME == 'Basic.Nack':
            self.nacked += 1
        tags = [method.delivery_tag]
        if method.multiple:
            tags = [tag for tag in self.outstanding if tag <= method.delivery_tag]
        for tag in tags:
            self.outstanding.pop(tag, None)
        if not self.outstanding:
            if self.published < MESSAGE_COUNT:
                self.publish_some()
            else:
                self.maybe_finish()

    def maybe_finish(self):
        if self.outstanding or self.published < MESSAGE_COUNT:
            return
        elapsed_ms = int((time.monotonic() - self.start) * 1000)
        if self.nacked:
            self.error = f"{self.nacked} messages were nack-ed"
        elif self.batch_size is None:
            print(f"Published {MESSAGE_COUNT:,} messages and handled confirms "
                  f"asynchronously in {elapsed_ms:,} ms")
        else:
            print(f"Published {MESSAGE_COUNT:,} messages in batch in {elapsed_ms:,} ms")
        self.connection.close()


def main():
    publish_messages_individually()
    AsyncConfirmPublisher(batch_size=BATCH_SIZE).run()
    AsyncConfirmPublisher().run()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
