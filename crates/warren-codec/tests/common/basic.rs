//! Strategies for class basic (the largest), split from methods.rs to keep
//! files short.

use proptest::prelude::*;
use proptest::strategy::Union;
use warren_codec::{AMQPClass, spec};

use super::{field_table, short_string};

pub(super) fn basic_method() -> BoxedStrategy<AMQPClass> {
    use spec::basic::*;
    let wrap = |m: AMQPMethod| AMQPClass::Basic(m);
    Union::new(vec![
        (any::<u16>(), any::<bool>())
            .prop_map(move |(prefetch_count, global)| {
                wrap(AMQPMethod::Qos(Qos {
                    prefetch_count,
                    global,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::QosOk(QosOk {}))).boxed(),
        (
            short_string(),
            short_string(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(
                move |(queue, consumer_tag, no_local, no_ack, exclusive, nowait, arguments)| {
                    wrap(AMQPMethod::Consume(Consume {
                        queue,
                        consumer_tag,
                        no_local,
                        no_ack,
                        exclusive,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        (short_string(),)
            .prop_map(move |(consumer_tag,)| {
                wrap(AMQPMethod::ConsumeOk(ConsumeOk { consumer_tag }))
            })
            .boxed(),
        (short_string(), any::<bool>())
            .prop_map(move |(consumer_tag, nowait)| {
                wrap(AMQPMethod::Cancel(Cancel {
                    consumer_tag,
                    nowait,
                }))
            })
            .boxed(),
        (short_string(),)
            .prop_map(move |(consumer_tag,)| wrap(AMQPMethod::CancelOk(CancelOk { consumer_tag })))
            .boxed(),
        (short_string(), short_string(), any::<bool>(), any::<bool>())
            .prop_map(move |(exchange, routing_key, mandatory, immediate)| {
                wrap(AMQPMethod::Publish(Publish {
                    exchange,
                    routing_key,
                    mandatory,
                    immediate,
                }))
            })
            .boxed(),
        (any::<u16>(), short_string(), short_string(), short_string())
            .prop_map(move |(reply_code, reply_text, exchange, routing_key)| {
                wrap(AMQPMethod::Return(Return {
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                }))
            })
            .boxed(),
        (
            short_string(),
            any::<u64>(),
            any::<bool>(),
            short_string(),
            short_string(),
        )
            .prop_map(
                move |(consumer_tag, delivery_tag, redelivered, exchange, routing_key)| {
                    wrap(AMQPMethod::Deliver(Deliver {
                        consumer_tag,
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                    }))
                },
            )
            .boxed(),
        (short_string(), any::<bool>())
            .prop_map(move |(queue, no_ack)| wrap(AMQPMethod::Get(Get { queue, no_ack })))
            .boxed(),
        (
            any::<u64>(),
            any::<bool>(),
            short_string(),
            short_string(),
            any::<u32>(),
        )
            .prop_map(
                move |(delivery_tag, redelivered, exchange, routing_key, message_count)| {
                    wrap(AMQPMethod::GetOk(GetOk {
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                        message_count,
                    }))
                },
            )
            .boxed(),
        Just(wrap(AMQPMethod::GetEmpty(GetEmpty {}))).boxed(),
        (any::<u64>(), any::<bool>())
            .prop_map(move |(delivery_tag, multiple)| {
                wrap(AMQPMethod::Ack(Ack {
                    delivery_tag,
                    multiple,
                }))
            })
            .boxed(),
        (any::<u64>(), any::<bool>())
            .prop_map(move |(delivery_tag, requeue)| {
                wrap(AMQPMethod::Reject(Reject {
                    delivery_tag,
                    requeue,
                }))
            })
            .boxed(),
        (any::<bool>(),)
            .prop_map(move |(requeue,)| wrap(AMQPMethod::RecoverAsync(RecoverAsync { requeue })))
            .boxed(),
        (any::<bool>(),)
            .prop_map(move |(requeue,)| wrap(AMQPMethod::Recover(Recover { requeue })))
            .boxed(),
        Just(wrap(AMQPMethod::RecoverOk(RecoverOk {}))).boxed(),
        (any::<u64>(), any::<bool>(), any::<bool>())
            .prop_map(move |(delivery_tag, multiple, requeue)| {
                wrap(AMQPMethod::Nack(Nack {
                    delivery_tag,
                    multiple,
                    requeue,
                }))
            })
            .boxed(),
    ])
    .boxed()
}
