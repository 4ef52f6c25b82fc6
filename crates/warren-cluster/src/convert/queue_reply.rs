//! queue::{Reply<u64>, QueueError} <-> log::{QueueReply, QueueError}.

use warren_core::queue::{QueueError, Reply};
use warren_rpc::log as pb;
use warren_rpc::log::queue_error::{Error as E, InvalidArgument};
use warren_rpc::log::queue_reply::{GetOk, Reply as R};

use super::{DecodeError, FromProto, IntoProto, required};

impl IntoProto<pb::QueueError> for QueueError {
    fn into_proto(self) -> pb::QueueError {
        let e = match self {
            QueueError::InvalidArgument {
                arg,
                reason,
                resource,
            } => E::InvalidArgument(InvalidArgument {
                arg,
                reason,
                resource,
            }),
            QueueError::UnknownDeliveryTag { msg_id } => E::UnknownDeliveryTag(msg_id),
            QueueError::ExclusiveConsumer { resource } => E::ExclusiveConsumer(resource),
            QueueError::ConsumerTagInUse { tag } => E::ConsumerTagInUse(tag),
            QueueError::UnknownConsumer { tag } => E::UnknownConsumer(tag),
            QueueError::NotCreditMode { tag } => E::NotCreditMode(tag),
        };
        pb::QueueError { error: Some(e) }
    }
}

impl FromProto<pb::QueueError> for QueueError {
    fn from_proto(p: pb::QueueError) -> Result<Self, DecodeError> {
        Ok(match required(p.error, "queue_error.error")? {
            E::InvalidArgument(a) => QueueError::InvalidArgument {
                arg: a.arg,
                reason: a.reason,
                resource: a.resource,
            },
            E::UnknownDeliveryTag(msg_id) => QueueError::UnknownDeliveryTag { msg_id },
            E::ExclusiveConsumer(resource) => QueueError::ExclusiveConsumer { resource },
            E::ConsumerTagInUse(tag) => QueueError::ConsumerTagInUse { tag },
            E::UnknownConsumer(tag) => QueueError::UnknownConsumer { tag },
            E::NotCreditMode(tag) => QueueError::NotCreditMode { tag },
        })
    }
}

impl IntoProto<pb::QueueReply> for Reply<u64> {
    fn into_proto(self) -> pb::QueueReply {
        let r = match self {
            Reply::Ok => R::Ok(pb::Empty {}),
            Reply::Enqueued { msg_id } => R::Enqueued(msg_id),
            Reply::Rejected => R::Rejected(pb::Empty {}),
            Reply::GetOk {
                msg_id,
                msg,
                redelivered,
                message_count,
            } => R::GetOk(GetOk {
                msg_id,
                log_index: msg,
                redelivered,
                message_count,
            }),
            Reply::GetEmpty => R::GetEmpty(pb::Empty {}),
            Reply::Purged { count } => R::Purged(count),
            Reply::Cancelled { consumer_count } => R::Cancelled(consumer_count),
            Reply::Error(e) => R::Error(e.into_proto()),
        };
        pb::QueueReply { reply: Some(r) }
    }
}

impl FromProto<pb::QueueReply> for Reply<u64> {
    fn from_proto(p: pb::QueueReply) -> Result<Self, DecodeError> {
        Ok(match required(p.reply, "queue_reply.reply")? {
            R::Ok(_) => Reply::Ok,
            R::Enqueued(msg_id) => Reply::Enqueued { msg_id },
            R::Rejected(_) => Reply::Rejected,
            R::GetOk(g) => Reply::GetOk {
                msg_id: g.msg_id,
                msg: g.log_index,
                redelivered: g.redelivered,
                message_count: g.message_count,
            },
            R::GetEmpty(_) => Reply::GetEmpty,
            R::Purged(count) => Reply::Purged { count },
            R::Cancelled(consumer_count) => Reply::Cancelled { consumer_count },
            R::Error(e) => Reply::Error(QueueError::from_proto(e)?),
        })
    }
}
