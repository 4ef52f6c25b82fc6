//! Round trips domain -> protobuf -> bytes -> protobuf -> domain, over
//! generated values, and the decode errors for malformed input.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;
use warren_core::message::Message;
use warren_core::meta::{
    BindingDef, Destination, ExchangeDef, ExchangeKind, MetaCommand, MetaError, MetaReply,
    PasswordHash, Permission, QueueDef, User,
};
use warren_core::queue::{
    CheckedOutMsg, Command, ConsumerImage, ConsumerKey, DeadLetterReason, Effect, Limit, MsgImage,
    Overflow, OwnerId, QueueConfig, QueueError, QueueImage, ReadyMsg, Reply,
};
use warren_core::value::{Table, Value};
use warren_rpc::log as pb;

use super::{DecodeError, FromProto, IntoProto, QueueOp};

/// domain -> proto -> bytes -> proto -> domain.
fn roundtrip<D, P>(d: D) -> D
where
    D: IntoProto<P> + FromProto<P>,
    P: prost::Message + Default,
{
    let bytes = d.into_proto().encode_to_vec();
    let p = P::decode(Bytes::from(bytes)).expect("decodes");
    D::from_proto(p).expect("converts back")
}

fn name() -> impl Strategy<Value = String> {
    "[a-z.#*]{0,8}"
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i8>().prop_map(Value::I8),
        any::<u8>().prop_map(Value::U8),
        any::<i16>().prop_map(Value::I16),
        any::<u16>().prop_map(Value::U16),
        any::<i32>().prop_map(Value::I32),
        any::<u32>().prop_map(Value::U32),
        any::<i64>().prop_map(Value::I64),
        (-1e6f32..1e6).prop_map(Value::F32),
        (-1e12f64..1e12).prop_map(Value::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| Value::Decimal { scale, value }),
        name().prop_map(Value::ShortString),
        any::<Vec<u8>>().prop_map(|b| Value::LongString(b.into())),
        any::<u64>().prop_map(Value::Timestamp),
        any::<Vec<u8>>().prop_map(|b| Value::ByteArray(b.into())),
        Just(Value::Void),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name(), inner, 0..4).prop_map(Value::Table),
        ]
    })
}

fn table() -> impl Strategy<Value = Table> {
    prop::collection::btree_map(name(), value(), 0..4)
}

fn password_hash() -> impl Strategy<Value = PasswordHash> {
    prop_oneof![
        Just(PasswordHash::None),
        (any::<[u8; 4]>(), any::<[u8; 32]>())
            .prop_map(|(salt, hash)| PasswordHash::Sha256 { salt, hash }),
        (any::<[u8; 4]>(), any::<[u8; 16]>())
            .prop_map(|(salt, hash)| PasswordHash::Md5 { salt, hash }),
        (any::<[u8; 4]>(), prop::collection::vec(any::<u8>(), 64)).prop_map(|(salt, h)| {
            let mut hash = [0u8; 64];
            hash.copy_from_slice(&h);
            PasswordHash::Sha512 { salt, hash }
        }),
    ]
}

fn exchange_def() -> impl Strategy<Value = ExchangeDef> {
    let kind = prop_oneof![
        Just(ExchangeKind::Direct),
        Just(ExchangeKind::Fanout),
        Just(ExchangeKind::Topic),
        Just(ExchangeKind::Headers),
    ];
    (name(), kind, any::<[bool; 3]>(), table()).prop_map(|(name, kind, f, arguments)| ExchangeDef {
        name,
        kind,
        durable: f[0],
        auto_delete: f[1],
        internal: f[2],
        arguments,
    })
}

fn binding() -> impl Strategy<Value = BindingDef> {
    let dest = prop_oneof![
        name().prop_map(Destination::Queue),
        name().prop_map(Destination::Exchange)
    ];
    (name(), dest, name(), table()).prop_map(|(source, destination, routing_key, arguments)| {
        BindingDef {
            source,
            destination,
            routing_key,
            arguments,
        }
    })
}

fn meta_command() -> impl Strategy<Value = MetaCommand> {
    let user = (name(), password_hash(), prop::collection::vec(name(), 0..3)).prop_map(
        |(name, password_hash, tags)| User {
            name,
            password_hash,
            tags,
        },
    );
    let queue = (
        name(),
        any::<bool>(),
        any::<Option<u64>>(),
        any::<bool>(),
        table(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(name, durable, exclusive_owner, auto_delete, arguments, home)| QueueDef {
                name,
                durable,
                exclusive_owner,
                auto_delete,
                arguments,
                home,
            },
        );
    prop_oneof![
        name().prop_map(|name| MetaCommand::AddVhost { name }),
        name().prop_map(|name| MetaCommand::DeleteVhost { name }),
        user.prop_map(|user| MetaCommand::PutUser { user }),
        name().prop_map(|name| MetaCommand::DeleteUser { name }),
        (name(), name(), name(), name()).prop_map(|(user, vhost, c, w)| {
            MetaCommand::SetPermissions {
                user,
                vhost,
                permission: Permission {
                    configure: c,
                    write: w,
                    read: ".*".into(),
                },
            }
        }),
        (name(), exchange_def())
            .prop_map(|(vhost, def)| MetaCommand::DeclareExchange { vhost, def }),
        (name(), name(), any::<bool>()).prop_map(|(vhost, name, if_unused)| {
            MetaCommand::DeleteExchange {
                vhost,
                name,
                if_unused,
            }
        }),
        (name(), queue).prop_map(|(vhost, def)| MetaCommand::DeclareQueue { vhost, def }),
        (name(), name()).prop_map(|(vhost, name)| MetaCommand::DeleteQueue { vhost, name }),
        (name(), binding()).prop_map(|(vhost, binding)| MetaCommand::Bind { vhost, binding }),
        (name(), binding()).prop_map(|(vhost, binding)| MetaCommand::Unbind { vhost, binding }),
        any::<u64>().prop_map(|connection| MetaCommand::DeleteExclusiveOf { connection }),
    ]
}

fn meta_result() -> impl Strategy<Value = Result<MetaReply, MetaError>> {
    let pair = (name(), name());
    prop_oneof![
        Just(Ok(MetaReply::Ok)),
        Just(Ok(MetaReply::Created)),
        Just(Ok(MetaReply::Existed)),
        pair.prop_map(|(vhost, name)| Ok(MetaReply::QueueDeleted { vhost, name })),
        prop::collection::vec((name(), name()), 0..3).prop_map(|v| Ok(MetaReply::Deleted(v))),
        (any::<u16>(), name()).prop_map(|(code, text)| Err(MetaError { code, text })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        name(),
        name(),
        any::<Vec<u8>>(),
        any::<Vec<u8>>(),
        any::<bool>(),
        any::<u8>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(exchange, routing_key, p, b, persistent, priority, expiration_ms)| Message {
                exchange,
                routing_key,
                properties: p.into(),
                body: b.into(),
                persistent,
                priority,
                expiration_ms,
            },
        )
}

fn queue_config() -> impl Strategy<Value = QueueConfig> {
    let overflow = prop_oneof![
        Just(Overflow::DropHead),
        Just(Overflow::RejectPublish),
        Just(Overflow::RejectPublishDlx)
    ];
    (
        any::<[Option<u64>; 3]>(),
        overflow,
        any::<[bool; 2]>(),
        any::<Option<u32>>(),
        any::<Option<u8>>(),
    )
        .prop_map(
            |(n, overflow, f, delivery_limit, max_priority)| QueueConfig {
                message_ttl_ms: n[0],
                max_length: n[1],
                max_length_bytes: n[2],
                overflow,
                dead_letter: f[0],
                delivery_limit,
                single_active_consumer: f[1],
                max_priority,
            },
        )
}

fn consumer() -> impl Strategy<Value = ConsumerKey> {
    (any::<u64>(), name()).prop_map(|(o, t)| ConsumerKey::new(OwnerId(o), t))
}

fn queue_op<M: std::fmt::Debug + Clone + 'static>(
    payload: impl Strategy<Value = M> + 'static,
) -> impl Strategy<Value = QueueOp<M>> {
    let ids = (any::<u64>(), prop::collection::vec(any::<u64>(), 0..4));
    let cmd = prop_oneof![
        (payload, any::<u64>(), any::<Option<u64>>(), any::<u8>()).prop_map(
            |(msg, size, expiration_ms, priority)| Command::Enqueue {
                msg,
                size,
                expiration_ms,
                priority
            }
        ),
        (consumer(), any::<u32>(), any::<[bool; 2]>()).prop_map(|(consumer, prefetch, f)| {
            Command::Subscribe {
                consumer,
                prefetch,
                no_ack: f[0],
                exclusive: f[1],
            }
        }),
        (consumer(), any::<[bool; 2]>()).prop_map(|(consumer, f)| Command::SubscribeCredit {
            consumer,
            no_ack: f[0],
            exclusive: f[1],
        }),
        consumer().prop_map(|consumer| Command::Cancel { consumer }),
        (consumer(), any::<u32>())
            .prop_map(|(consumer, credit)| Command::Credit { consumer, credit }),
        (any::<u64>(), any::<bool>()).prop_map(|(o, no_ack)| Command::Get {
            owner: OwnerId(o),
            no_ack
        }),
        ids.clone().prop_map(|(o, msg_ids)| Command::Settle {
            owner: OwnerId(o),
            msg_ids
        }),
        ids.clone().prop_map(|(o, msg_ids)| Command::Return {
            owner: OwnerId(o),
            msg_ids
        }),
        ids.prop_map(|(o, msg_ids)| Command::Discard {
            owner: OwnerId(o),
            msg_ids
        }),
        any::<u64>().prop_map(|o| Command::OwnerDown { owner: OwnerId(o) }),
        Just(Command::Purge),
        Just(Command::Tick),
        queue_config().prop_map(|config| Command::UpdateConfig { config }),
    ];
    prop_oneof![
        1 => (name(), name(), queue_config()).prop_map(|(vhost, name, config)| QueueOp::Create {
            vhost,
            name,
            config
        }),
        12 => cmd.prop_map(QueueOp::Command),
    ]
}

fn queue_error() -> impl Strategy<Value = QueueError> {
    prop_oneof![
        (name(), name(), name()).prop_map(|(arg, reason, resource)| {
            QueueError::InvalidArgument {
                arg,
                reason,
                resource,
            }
        }),
        any::<u64>().prop_map(|msg_id| QueueError::UnknownDeliveryTag { msg_id }),
        name().prop_map(|resource| QueueError::ExclusiveConsumer { resource }),
        name().prop_map(|tag| QueueError::ConsumerTagInUse { tag }),
        name().prop_map(|tag| QueueError::UnknownConsumer { tag }),
        name().prop_map(|tag| QueueError::NotCreditMode { tag }),
    ]
}

fn reply() -> impl Strategy<Value = Reply<u64>> {
    prop_oneof![
        Just(Reply::Ok),
        any::<u64>().prop_map(|msg_id| Reply::Enqueued { msg_id }),
        Just(Reply::Rejected),
        (any::<u64>(), any::<u64>(), any::<bool>(), any::<u64>()).prop_map(|(a, b, r, c)| {
            Reply::GetOk {
                msg_id: a,
                msg: b,
                redelivered: r,
                message_count: c,
            }
        }),
        Just(Reply::GetEmpty),
        any::<u64>().prop_map(|count| Reply::Purged { count }),
        any::<u32>().prop_map(|consumer_count| Reply::Cancelled { consumer_count }),
        queue_error().prop_map(Reply::Error),
    ]
}

fn effect() -> impl Strategy<Value = Effect<u64>> {
    let reason = prop_oneof![
        Just(DeadLetterReason::Rejected),
        Just(DeadLetterReason::Expired),
        Just(DeadLetterReason::MaxLen),
        Just(DeadLetterReason::DeliveryLimit),
    ];
    prop_oneof![
        (
            consumer(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(|(consumer, msg_id, msg, redelivered, delivery_count)| {
                Effect::Deliver {
                    consumer,
                    msg_id,
                    msg,
                    redelivered,
                    delivery_count,
                }
            }),
        (any::<u64>(), reason).prop_map(|(msg, reason)| Effect::DeadLetter { msg, reason }),
        consumer().prop_map(|consumer| Effect::ConsumerActivated { consumer }),
    ]
}

fn msg_image() -> impl Strategy<Value = MsgImage<u64>> {
    // Mostly small values (as in a real queue), sometimes any: the deltas
    // must wrap correctly either way.
    let n = prop_oneof![3 => 0u64..1000, 1 => any::<u64>()];
    (
        n.clone(),
        n.clone(),
        n.clone(),
        prop::option::of(n),
        prop_oneof![0u32..2, any::<u32>()],
        prop_oneof![Just(0u8), any::<u8>()],
    )
        .prop_map(
            |(id, size, payload, expiry, delivery_count, priority)| MsgImage {
                id,
                size,
                expiry,
                delivery_count,
                priority,
                payload,
            },
        )
}

fn queue_image() -> impl Strategy<Value = QueueImage<u64>> {
    let ready = prop::collection::vec(
        (msg_image(), any::<bool>()).prop_map(|(msg, requeued)| ReadyMsg { msg, requeued }),
        0..12,
    );
    let out = prop::collection::vec(
        (msg_image(), 0u64..4, prop::option::of(any::<u64>())).prop_map(
            |(msg, owner, consumer)| CheckedOutMsg {
                owner: OwnerId(owner),
                consumer,
                msg,
            },
        ),
        0..12,
    );
    let limit = prop_oneof![
        any::<u32>().prop_map(Limit::Prefetch),
        any::<u32>().prop_map(Limit::Credit)
    ];
    let consumers = prop::collection::vec(
        (
            any::<u64>(),
            consumer(),
            any::<[bool; 2]>(),
            limit,
            any::<u32>(),
        )
            .prop_map(|(seq, key, f, limit, unacked)| ConsumerImage {
                seq,
                key,
                no_ack: f[0],
                exclusive: f[1],
                limit,
                unacked,
            }),
        0..4,
    );
    (
        queue_config(),
        name(),
        any::<[u64; 3]>(),
        ready,
        out,
        consumers,
    )
        .prop_map(
            |(config, resource, n, ready, checked_out, consumers)| QueueImage {
                config,
                resource,
                next_msg_id: n[0],
                ready,
                checked_out,
                consumers,
                next_consumer_seq: n[1],
                cursor: n[2],
            },
        )
}

proptest! {
    #[test]
    fn values_roundtrip(v in value()) {
        prop_assert_eq!(roundtrip::<Value, pb::Value>(v.clone()), v);
    }

    #[test]
    fn meta_commands_roundtrip(c in meta_command()) {
        prop_assert_eq!(roundtrip::<MetaCommand, pb::MetaCommand>(c.clone()), c);
    }

    #[test]
    fn meta_results_roundtrip(r in meta_result()) {
        prop_assert_eq!(roundtrip::<_, pb::MetaResult>(r.clone()), r);
    }

    #[test]
    fn proposed_queue_commands_roundtrip(c in queue_op(message())) {
        prop_assert_eq!(roundtrip::<_, pb::QueueCommand>(c.clone()), c);
    }

    #[test]
    fn indexed_queue_commands_roundtrip(c in queue_op(any::<u64>())) {
        prop_assert_eq!(roundtrip::<_, pb::QueueCommand>(c.clone()), c);
    }

    #[test]
    fn replies_roundtrip(r in reply()) {
        prop_assert_eq!(roundtrip::<_, pb::QueueReply>(r.clone()), r);
    }

    #[test]
    fn effects_roundtrip(e in effect()) {
        prop_assert_eq!(roundtrip::<_, pb::QueueEffect>(e.clone()), e);
    }

    #[test]
    fn queue_images_roundtrip(i in queue_image()) {
        prop_assert_eq!(roundtrip::<_, pb::QueueImage>(i.clone()), i);
    }

    /// A snapshot encodes the state's image row by row: the same bytes as
    /// the image taken whole.
    #[test]
    fn a_state_encodes_as_its_image(mut i in queue_image()) {
        // A state counts its bytes: sizes a real queue could hold.
        i.ready.iter_mut().for_each(|r| r.msg.size %= 1 << 40);
        i.checked_out.iter_mut().for_each(|c| c.msg.size %= 1 << 40);
        let state = warren_core::queue::QueueState::from_image(i);
        let whole = state.image().into_proto();
        prop_assert_eq!(super::state_image_to_pb(&state), whole);
    }
}

#[test]
fn a_missing_required_field_is_named() {
    let err = MetaCommand::from_proto(pb::MetaCommand { command: None }).unwrap_err();
    assert_eq!(err, DecodeError::Missing("meta_command.command"));
    let put = pb::meta_command::PutUser { user: None };
    let cmd = pb::MetaCommand {
        command: Some(pb::meta_command::Command::PutUser(put)),
    };
    assert_eq!(
        MetaCommand::from_proto(cmd).unwrap_err(),
        DecodeError::Missing("put_user.user")
    );
}

#[test]
fn out_of_range_values_are_refused() {
    let v = pb::Value {
        kind: Some(pb::value::Kind::U8(300)),
    };
    assert!(matches!(
        Value::from_proto(v),
        Err(DecodeError::Invalid {
            field: "value.u8",
            ..
        })
    ));
    let x = pb::ExchangeDef {
        kind: 99,
        ..Default::default()
    };
    assert!(matches!(
        ExchangeDef::from_proto(x),
        Err(DecodeError::Invalid {
            field: "exchange.kind",
            ..
        })
    ));
    let h = pb::PasswordHash {
        algorithm: pb::password_hash::Algorithm::Sha256.into(),
        salt: Bytes::from_static(b"abcd"),
        hash: Bytes::from_static(b"short"),
    };
    assert!(PasswordHash::from_proto(h).is_err());
}

#[test]
fn a_message_payload_is_not_an_index() {
    let op: QueueOp<Message> = QueueOp::Command(Command::Enqueue {
        msg: Message {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Bytes::new(),
            body: Bytes::from_static(b"hi"),
            persistent: true,
            priority: 0,
            expiration_ms: None,
        },
        size: 2,
        expiration_ms: None,
        priority: 0,
    });
    let p: pb::QueueCommand = op.into_proto();
    assert!(QueueOp::<u64>::from_proto(p).is_err());
}

#[test]
fn a_backlog_costs_a_few_bytes_per_message() {
    // 10k never-delivered messages of 100 bytes, ids and log indexes
    // consecutive: what a deep queue looks like.
    let ready = (1..=10_000u64)
        .map(|i| ReadyMsg {
            msg: MsgImage {
                id: i,
                size: 100,
                expiry: None,
                delivery_count: 0,
                priority: 0,
                payload: i + 1,
            },
            requeued: false,
        })
        .collect();
    let image = QueueImage {
        config: QueueConfig::default(),
        resource: "queue 'q' in vhost '/'".into(),
        next_msg_id: 10_001,
        ready,
        checked_out: Vec::new(),
        consumers: Vec::new(),
        next_consumer_seq: 0,
        cursor: 0,
    };
    let bytes = image.clone().into_proto().encode_to_vec();
    assert!(bytes.len() < 4 * 10_000, "{} bytes", bytes.len());
    let back = pb::QueueImage::decode(Bytes::from(bytes)).expect("decodes");
    assert_eq!(QueueImage::from_proto(back), Ok(image));
}

#[test]
fn image_columns_of_the_wrong_length_are_refused() {
    let msg = MsgImage {
        id: 1,
        size: 3,
        expiry: Some(9),
        delivery_count: 0,
        priority: 0,
        payload: 5,
    };
    let image = QueueImage {
        config: QueueConfig::default(),
        resource: String::new(),
        next_msg_id: 2,
        ready: vec![ReadyMsg {
            msg,
            requeued: true,
        }],
        checked_out: Vec::new(),
        consumers: Vec::new(),
        next_consumer_seq: 0,
        cursor: 0,
    };
    let mut p: pb::QueueImage = image.into_proto();
    p.ready_requeued.push(false);
    assert!(matches!(
        QueueImage::<u64>::from_proto(p.clone()),
        Err(DecodeError::Invalid {
            field: "queue_image.ready_requeued",
            ..
        })
    ));
    p.ready_requeued.pop();
    let columns = p.ready.as_mut().expect("ready columns");
    columns.expiries.as_mut().expect("expiries").deltas.push(4);
    assert!(QueueImage::<u64>::from_proto(p).is_err());
}
