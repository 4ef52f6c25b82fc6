//! QueueOp<M> (a warren_core::queue::Command<M>, or the group's creation)
//! <-> log::QueueCommand.

use warren_core::message::Message;
use warren_core::queue::{Command, ConsumerKey, OwnerId, QueueConfig};
use warren_rpc::log as pb;
use warren_rpc::log::queue_command::{self as qc, Command as C, enqueue::Payload};

use super::{DecodeError, FromProto, IntoProto, narrow, required};

/// What a queue group's log holds: the queue machine's commands, preceded
/// by the entry that creates the group's queue (its name for error texts
/// and its configuration), which warren-core has no command for.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueOp<M> {
    Create {
        vhost: String,
        name: String,
        config: QueueConfig,
    },
    Command(Command<M>),
}

/// The payload of an `Enqueue`: the whole message (in a proposal) or the log
/// index of the entry that holds it (in the queue state and its snapshots).
pub trait QueuePayload: Sized {
    fn into_payload(self) -> Payload;
    fn from_payload(p: Payload) -> Result<Self, DecodeError>;
}

impl QueuePayload for Message {
    fn into_payload(self) -> Payload {
        Payload::Message(self.into_proto())
    }
    fn from_payload(p: Payload) -> Result<Self, DecodeError> {
        match p {
            Payload::Message(m) => Message::from_proto(m),
            Payload::LogIndex(_) => Err(super::invalid("enqueue.payload", "a log index")),
        }
    }
}

impl QueuePayload for u64 {
    fn into_payload(self) -> Payload {
        Payload::LogIndex(self)
    }
    fn from_payload(p: Payload) -> Result<Self, DecodeError> {
        match p {
            Payload::LogIndex(i) => Ok(i),
            Payload::Message(_) => Err(super::invalid("enqueue.payload", "a message")),
        }
    }
}

impl IntoProto<pb::ConsumerKey> for ConsumerKey {
    fn into_proto(self) -> pb::ConsumerKey {
        pb::ConsumerKey {
            owner: self.owner.0,
            tag: self.tag,
        }
    }
}

impl FromProto<pb::ConsumerKey> for ConsumerKey {
    fn from_proto(p: pb::ConsumerKey) -> Result<Self, DecodeError> {
        Ok(ConsumerKey::new(OwnerId(p.owner), p.tag))
    }
}

fn consumer(c: Option<pb::ConsumerKey>, field: &'static str) -> Result<ConsumerKey, DecodeError> {
    ConsumerKey::from_proto(required(c, field)?)
}

fn ids(owner: OwnerId, msg_ids: Vec<u64>) -> qc::MsgIds {
    qc::MsgIds {
        owner: owner.0,
        msg_ids,
    }
}

fn command_into<M: QueuePayload>(cmd: Command<M>) -> C {
    match cmd {
        Command::Enqueue {
            msg,
            size,
            expiration_ms,
            priority,
        } => C::Enqueue(qc::Enqueue {
            payload: Some(msg.into_payload()),
            size,
            expiration_ms,
            priority: priority.into(),
        }),
        Command::Subscribe {
            consumer,
            prefetch,
            no_ack,
            exclusive,
        } => C::Subscribe(qc::Subscribe {
            consumer: Some(consumer.into_proto()),
            prefetch,
            no_ack,
            exclusive,
        }),
        Command::SubscribeCredit {
            consumer,
            no_ack,
            exclusive,
        } => C::SubscribeCredit(qc::SubscribeCredit {
            consumer: Some(consumer.into_proto()),
            no_ack,
            exclusive,
        }),
        Command::Cancel { consumer } => C::Cancel(qc::Cancel {
            consumer: Some(consumer.into_proto()),
        }),
        Command::Credit { consumer, credit } => C::Credit(qc::Credit {
            consumer: Some(consumer.into_proto()),
            credit,
        }),
        Command::Get { owner, no_ack } => C::Get(qc::Get {
            owner: owner.0,
            no_ack,
        }),
        Command::Settle { owner, msg_ids } => C::Settle(ids(owner, msg_ids)),
        Command::Return { owner, msg_ids } => C::Return(ids(owner, msg_ids)),
        Command::Discard { owner, msg_ids } => C::Discard(ids(owner, msg_ids)),
        Command::OwnerDown { owner } => C::OwnerDown(qc::OwnerDown { owner: owner.0 }),
        Command::Purge => C::Purge(pb::Empty {}),
        Command::Tick => C::Tick(pb::Empty {}),
        Command::UpdateConfig { config } => C::UpdateConfig(qc::UpdateConfig {
            config: Some(config.into_proto()),
        }),
    }
}

fn command_from<M: QueuePayload>(c: C) -> Result<Command<M>, DecodeError> {
    Ok(match c {
        C::Enqueue(e) => Command::Enqueue {
            msg: M::from_payload(required(e.payload, "enqueue.payload")?)?,
            size: e.size,
            expiration_ms: e.expiration_ms,
            priority: narrow(e.priority, "enqueue.priority")?,
        },
        C::Subscribe(s) => Command::Subscribe {
            consumer: consumer(s.consumer, "subscribe.consumer")?,
            prefetch: s.prefetch,
            no_ack: s.no_ack,
            exclusive: s.exclusive,
        },
        C::SubscribeCredit(s) => Command::SubscribeCredit {
            consumer: consumer(s.consumer, "subscribe_credit.consumer")?,
            no_ack: s.no_ack,
            exclusive: s.exclusive,
        },
        C::Cancel(c) => Command::Cancel {
            consumer: consumer(c.consumer, "cancel.consumer")?,
        },
        C::Credit(c) => Command::Credit {
            consumer: consumer(c.consumer, "credit.consumer")?,
            credit: c.credit,
        },
        C::Get(g) => Command::Get {
            owner: OwnerId(g.owner),
            no_ack: g.no_ack,
        },
        C::Settle(m) => Command::Settle {
            owner: OwnerId(m.owner),
            msg_ids: m.msg_ids,
        },
        C::Return(m) => Command::Return {
            owner: OwnerId(m.owner),
            msg_ids: m.msg_ids,
        },
        C::Discard(m) => Command::Discard {
            owner: OwnerId(m.owner),
            msg_ids: m.msg_ids,
        },
        C::OwnerDown(o) => Command::OwnerDown {
            owner: OwnerId(o.owner),
        },
        C::Purge(_) => Command::Purge,
        C::Tick(_) => Command::Tick,
        C::UpdateConfig(u) => Command::UpdateConfig {
            config: QueueConfig::from_proto(required(u.config, "update_config.config")?)?,
        },
        C::Create(_) => unreachable_create()?,
    })
}

/// `Create` is handled by the caller; reaching here is a malformed nesting.
fn unreachable_create<T>() -> Result<T, DecodeError> {
    Err(super::invalid("queue_command", "create inside a command"))
}

impl IntoProto<qc::Create> for (String, String, QueueConfig) {
    fn into_proto(self) -> qc::Create {
        qc::Create {
            vhost: self.0,
            name: self.1,
            config: Some(self.2.into_proto()),
        }
    }
}

impl FromProto<qc::Create> for (String, String, QueueConfig) {
    fn from_proto(c: qc::Create) -> Result<Self, DecodeError> {
        let config = QueueConfig::from_proto(required(c.config, "create.config")?)?;
        Ok((c.vhost, c.name, config))
    }
}

impl<M: QueuePayload> IntoProto<pb::QueueCommand> for QueueOp<M> {
    fn into_proto(self) -> pb::QueueCommand {
        let c = match self {
            QueueOp::Create {
                vhost,
                name,
                config,
            } => C::Create((vhost, name, config).into_proto()),
            QueueOp::Command(cmd) => command_into(cmd),
        };
        pb::QueueCommand { command: Some(c) }
    }
}

impl<M: QueuePayload> FromProto<pb::QueueCommand> for QueueOp<M> {
    fn from_proto(p: pb::QueueCommand) -> Result<Self, DecodeError> {
        match required(p.command, "queue_command.command")? {
            C::Create(c) => {
                let (vhost, name, config) = FromProto::from_proto(c)?;
                Ok(QueueOp::Create {
                    vhost,
                    name,
                    config,
                })
            }
            other => Ok(QueueOp::Command(command_from(other)?)),
        }
    }
}
