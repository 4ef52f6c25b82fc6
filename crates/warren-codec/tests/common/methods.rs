//! One strategy per class, covering every method amq-protocol knows. Keep
//! in step with warren_codec::is_known_method (the tests check both ways).

use proptest::prelude::*;
use proptest::strategy::Union;
use warren_codec::{AMQPClass, spec};

use super::basic::basic_method;
use super::{field_table, long_string, short_string};

/// Any method of any class, each method equally likely (classes are
/// weighted by how many methods they have).
pub fn any_method() -> BoxedStrategy<AMQPClass> {
    Union::new_weighted(vec![
        (14, connection_method()),
        (6, channel_method()),
        (2, access_method()),
        (8, exchange_method()),
        (10, queue_method()),
        (18, basic_method()),
        (6, tx_method()),
        (2, confirm_method()),
    ])
    .boxed()
}

fn connection_method() -> BoxedStrategy<AMQPClass> {
    use spec::connection::*;
    let wrap = |m: AMQPMethod| AMQPClass::Connection(m);
    Union::new(vec![
        (
            any::<u8>(),
            any::<u8>(),
            field_table(),
            long_string(),
            long_string(),
        )
            .prop_map(
                move |(version_major, version_minor, server_properties, mechanisms, locales)| {
                    wrap(AMQPMethod::Start(Start {
                        version_major,
                        version_minor,
                        server_properties,
                        mechanisms,
                        locales,
                    }))
                },
            )
            .boxed(),
        (field_table(), short_string(), long_string(), short_string())
            .prop_map(move |(client_properties, mechanism, response, locale)| {
                wrap(AMQPMethod::StartOk(StartOk {
                    client_properties,
                    mechanism,
                    response,
                    locale,
                }))
            })
            .boxed(),
        (long_string(),)
            .prop_map(move |(challenge,)| wrap(AMQPMethod::Secure(Secure { challenge })))
            .boxed(),
        (long_string(),)
            .prop_map(move |(response,)| wrap(AMQPMethod::SecureOk(SecureOk { response })))
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                wrap(AMQPMethod::Tune(Tune {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(move |(channel_max, frame_max, heartbeat)| {
                wrap(AMQPMethod::TuneOk(TuneOk {
                    channel_max,
                    frame_max,
                    heartbeat,
                }))
            })
            .boxed(),
        (short_string(),)
            .prop_map(move |(virtual_host,)| wrap(AMQPMethod::Open(Open { virtual_host })))
            .boxed(),
        Just(wrap(AMQPMethod::OpenOk(OpenOk {}))).boxed(),
        (any::<u16>(), short_string(), any::<u16>(), any::<u16>())
            .prop_map(move |(reply_code, reply_text, class_id, method_id)| {
                wrap(AMQPMethod::Close(Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::CloseOk(CloseOk {}))).boxed(),
        (short_string(),)
            .prop_map(move |(reason,)| wrap(AMQPMethod::Blocked(Blocked { reason })))
            .boxed(),
        Just(wrap(AMQPMethod::Unblocked(Unblocked {}))).boxed(),
        (long_string(), short_string())
            .prop_map(move |(new_secret, reason)| {
                wrap(AMQPMethod::UpdateSecret(UpdateSecret {
                    new_secret,
                    reason,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::UpdateSecretOk(UpdateSecretOk {}))).boxed(),
    ])
    .boxed()
}

fn channel_method() -> BoxedStrategy<AMQPClass> {
    use spec::channel::*;
    let wrap = |m: AMQPMethod| AMQPClass::Channel(m);
    Union::new(vec![
        Just(wrap(AMQPMethod::Open(Open {}))).boxed(),
        Just(wrap(AMQPMethod::OpenOk(OpenOk {}))).boxed(),
        (any::<bool>(),)
            .prop_map(move |(active,)| wrap(AMQPMethod::Flow(Flow { active })))
            .boxed(),
        (any::<bool>(),)
            .prop_map(move |(active,)| wrap(AMQPMethod::FlowOk(FlowOk { active })))
            .boxed(),
        (any::<u16>(), short_string(), any::<u16>(), any::<u16>())
            .prop_map(move |(reply_code, reply_text, class_id, method_id)| {
                wrap(AMQPMethod::Close(Close {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::CloseOk(CloseOk {}))).boxed(),
    ])
    .boxed()
}

fn access_method() -> BoxedStrategy<AMQPClass> {
    use spec::access::*;
    let wrap = |m: AMQPMethod| AMQPClass::Access(m);
    Union::new(vec![
        (
            short_string(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(move |(realm, exclusive, passive, active, write, read)| {
                wrap(AMQPMethod::Request(Request {
                    realm,
                    exclusive,
                    passive,
                    active,
                    write,
                    read,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::RequestOk(RequestOk {}))).boxed(),
    ])
    .boxed()
}

fn exchange_method() -> BoxedStrategy<AMQPClass> {
    use spec::exchange::*;
    let wrap = |m: AMQPMethod| AMQPClass::Exchange(m);
    Union::new(vec![
        (
            short_string(),
            short_string(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(
                move |(
                    exchange,
                    kind,
                    passive,
                    durable,
                    auto_delete,
                    internal,
                    nowait,
                    arguments,
                )| {
                    wrap(AMQPMethod::Declare(Declare {
                        exchange,
                        kind,
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        Just(wrap(AMQPMethod::DeclareOk(DeclareOk {}))).boxed(),
        (short_string(), any::<bool>(), any::<bool>())
            .prop_map(move |(exchange, if_unused, nowait)| {
                wrap(AMQPMethod::Delete(Delete {
                    exchange,
                    if_unused,
                    nowait,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::DeleteOk(DeleteOk {}))).boxed(),
        (
            short_string(),
            short_string(),
            short_string(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(
                move |(destination, source, routing_key, nowait, arguments)| {
                    wrap(AMQPMethod::Bind(Bind {
                        destination,
                        source,
                        routing_key,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        Just(wrap(AMQPMethod::BindOk(BindOk {}))).boxed(),
        (
            short_string(),
            short_string(),
            short_string(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(
                move |(destination, source, routing_key, nowait, arguments)| {
                    wrap(AMQPMethod::Unbind(Unbind {
                        destination,
                        source,
                        routing_key,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        Just(wrap(AMQPMethod::UnbindOk(UnbindOk {}))).boxed(),
    ])
    .boxed()
}

fn queue_method() -> BoxedStrategy<AMQPClass> {
    use spec::queue::*;
    let wrap = |m: AMQPMethod| AMQPClass::Queue(m);
    Union::new(vec![
        (
            short_string(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(
                move |(queue, passive, durable, exclusive, auto_delete, nowait, arguments)| {
                    wrap(AMQPMethod::Declare(Declare {
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        nowait,
                        arguments,
                    }))
                },
            )
            .boxed(),
        (short_string(), any::<u32>(), any::<u32>())
            .prop_map(move |(queue, message_count, consumer_count)| {
                wrap(AMQPMethod::DeclareOk(DeclareOk {
                    queue,
                    message_count,
                    consumer_count,
                }))
            })
            .boxed(),
        (
            short_string(),
            short_string(),
            short_string(),
            any::<bool>(),
            field_table(),
        )
            .prop_map(move |(queue, exchange, routing_key, nowait, arguments)| {
                wrap(AMQPMethod::Bind(Bind {
                    queue,
                    exchange,
                    routing_key,
                    nowait,
                    arguments,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::BindOk(BindOk {}))).boxed(),
        (short_string(), any::<bool>())
            .prop_map(move |(queue, nowait)| wrap(AMQPMethod::Purge(Purge { queue, nowait })))
            .boxed(),
        (any::<u32>(),)
            .prop_map(move |(message_count,)| wrap(AMQPMethod::PurgeOk(PurgeOk { message_count })))
            .boxed(),
        (short_string(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(move |(queue, if_unused, if_empty, nowait)| {
                wrap(AMQPMethod::Delete(Delete {
                    queue,
                    if_unused,
                    if_empty,
                    nowait,
                }))
            })
            .boxed(),
        (any::<u32>(),)
            .prop_map(move |(message_count,)| {
                wrap(AMQPMethod::DeleteOk(DeleteOk { message_count }))
            })
            .boxed(),
        (
            short_string(),
            short_string(),
            short_string(),
            field_table(),
        )
            .prop_map(move |(queue, exchange, routing_key, arguments)| {
                wrap(AMQPMethod::Unbind(Unbind {
                    queue,
                    exchange,
                    routing_key,
                    arguments,
                }))
            })
            .boxed(),
        Just(wrap(AMQPMethod::UnbindOk(UnbindOk {}))).boxed(),
    ])
    .boxed()
}

fn tx_method() -> BoxedStrategy<AMQPClass> {
    use spec::tx::*;
    let wrap = |m: AMQPMethod| AMQPClass::Tx(m);
    Union::new(vec![
        Just(wrap(AMQPMethod::Select(Select {}))).boxed(),
        Just(wrap(AMQPMethod::SelectOk(SelectOk {}))).boxed(),
        Just(wrap(AMQPMethod::Commit(Commit {}))).boxed(),
        Just(wrap(AMQPMethod::CommitOk(CommitOk {}))).boxed(),
        Just(wrap(AMQPMethod::Rollback(Rollback {}))).boxed(),
        Just(wrap(AMQPMethod::RollbackOk(RollbackOk {}))).boxed(),
    ])
    .boxed()
}

fn confirm_method() -> BoxedStrategy<AMQPClass> {
    use spec::confirm::*;
    let wrap = |m: AMQPMethod| AMQPClass::Confirm(m);
    Union::new(vec![
        (any::<bool>(),)
            .prop_map(move |(nowait,)| wrap(AMQPMethod::Select(Select { nowait })))
            .boxed(),
        Just(wrap(AMQPMethod::SelectOk(SelectOk {}))).boxed(),
    ])
    .boxed()
}
