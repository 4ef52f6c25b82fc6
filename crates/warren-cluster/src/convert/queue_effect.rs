//! queue::{Effect<u64>, DeadLetterReason} <-> log::{QueueEffect, DeadLetterReason}.

use warren_core::queue::{ConsumerKey, DeadLetterReason, Effect};
use warren_rpc::log as pb;
use warren_rpc::log::queue_effect::{DeadLetter, Deliver, Effect as E};

use super::{DecodeError, FromProto, IntoProto, invalid, required};

impl IntoProto<pb::DeadLetterReason> for DeadLetterReason {
    fn into_proto(self) -> pb::DeadLetterReason {
        match self {
            DeadLetterReason::Rejected => pb::DeadLetterReason::Rejected,
            DeadLetterReason::Expired => pb::DeadLetterReason::Expired,
            DeadLetterReason::MaxLen => pb::DeadLetterReason::MaxLen,
            DeadLetterReason::DeliveryLimit => pb::DeadLetterReason::DeliveryLimit,
        }
    }
}

impl FromProto<i32> for DeadLetterReason {
    fn from_proto(p: i32) -> Result<Self, DecodeError> {
        Ok(match pb::DeadLetterReason::try_from(p) {
            Ok(pb::DeadLetterReason::Rejected) => DeadLetterReason::Rejected,
            Ok(pb::DeadLetterReason::Expired) => DeadLetterReason::Expired,
            Ok(pb::DeadLetterReason::MaxLen) => DeadLetterReason::MaxLen,
            Ok(pb::DeadLetterReason::DeliveryLimit) => DeadLetterReason::DeliveryLimit,
            Err(_) => return Err(invalid("dead_letter.reason", p.to_string())),
        })
    }
}

impl IntoProto<pb::QueueEffect> for Effect<u64> {
    fn into_proto(self) -> pb::QueueEffect {
        let e = match self {
            Effect::Deliver {
                consumer,
                msg_id,
                msg,
                redelivered,
                delivery_count,
            } => E::Deliver(Deliver {
                consumer: Some(consumer.into_proto()),
                msg_id,
                log_index: msg,
                redelivered,
                delivery_count,
            }),
            Effect::DeadLetter { msg, reason } => {
                let reason: pb::DeadLetterReason = reason.into_proto();
                E::DeadLetter(DeadLetter {
                    log_index: msg,
                    reason: reason.into(),
                })
            }
            Effect::ConsumerActivated { consumer } => E::ConsumerActivated(consumer.into_proto()),
        };
        pb::QueueEffect { effect: Some(e) }
    }
}

impl FromProto<pb::QueueEffect> for Effect<u64> {
    fn from_proto(p: pb::QueueEffect) -> Result<Self, DecodeError> {
        Ok(match required(p.effect, "queue_effect.effect")? {
            E::Deliver(d) => Effect::Deliver {
                consumer: ConsumerKey::from_proto(required(d.consumer, "deliver.consumer")?)?,
                msg_id: d.msg_id,
                msg: d.log_index,
                redelivered: d.redelivered,
                delivery_count: d.delivery_count,
            },
            E::DeadLetter(d) => Effect::DeadLetter {
                msg: d.log_index,
                reason: DeadLetterReason::from_proto(d.reason)?,
            },
            E::ConsumerActivated(c) => Effect::ConsumerActivated {
                consumer: ConsumerKey::from_proto(c)?,
            },
        })
    }
}
