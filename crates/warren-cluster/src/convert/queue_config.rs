//! queue::{QueueConfig, Overflow} <-> log::{QueueConfig, Overflow}.

use warren_core::queue::{Overflow, QueueConfig};
use warren_rpc::log as pb;

use super::{DecodeError, FromProto, IntoProto, invalid, narrow};

impl IntoProto<pb::QueueConfig> for QueueConfig {
    fn into_proto(self) -> pb::QueueConfig {
        let overflow = match self.overflow {
            Overflow::DropHead => pb::Overflow::DropHead,
            Overflow::RejectPublish => pb::Overflow::RejectPublish,
            Overflow::RejectPublishDlx => pb::Overflow::RejectPublishDlx,
        };
        pb::QueueConfig {
            message_ttl_ms: self.message_ttl_ms,
            max_length: self.max_length,
            max_length_bytes: self.max_length_bytes,
            overflow: overflow.into(),
            dead_letter: self.dead_letter,
            delivery_limit: self.delivery_limit,
            single_active_consumer: self.single_active_consumer,
            max_priority: self.max_priority.map(u32::from),
        }
    }
}

impl FromProto<pb::QueueConfig> for QueueConfig {
    fn from_proto(p: pb::QueueConfig) -> Result<Self, DecodeError> {
        let overflow = match pb::Overflow::try_from(p.overflow) {
            Ok(pb::Overflow::DropHead) => Overflow::DropHead,
            Ok(pb::Overflow::RejectPublish) => Overflow::RejectPublish,
            Ok(pb::Overflow::RejectPublishDlx) => Overflow::RejectPublishDlx,
            Err(_) => return Err(invalid("queue_config.overflow", p.overflow.to_string())),
        };
        Ok(QueueConfig {
            message_ttl_ms: p.message_ttl_ms,
            max_length: p.max_length,
            max_length_bytes: p.max_length_bytes,
            overflow,
            dead_letter: p.dead_letter,
            delivery_limit: p.delivery_limit,
            single_active_consumer: p.single_active_consumer,
            max_priority: p
                .max_priority
                .map(|v| narrow(v, "queue_config.max_priority"))
                .transpose()?,
        })
    }
}
