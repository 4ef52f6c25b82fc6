//! message::Message <-> log::Message.

use warren_core::message::Message;
use warren_rpc::log as pb;

use super::{DecodeError, FromProto, IntoProto, narrow};

impl IntoProto<pb::Message> for Message {
    fn into_proto(self) -> pb::Message {
        pb::Message {
            exchange: self.exchange,
            routing_key: self.routing_key,
            properties: self.properties,
            body: self.body,
            persistent: self.persistent,
            priority: self.priority.into(),
            expiration_ms: self.expiration_ms,
        }
    }
}

impl FromProto<pb::Message> for Message {
    fn from_proto(p: pb::Message) -> Result<Self, DecodeError> {
        Ok(Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties: p.properties,
            body: p.body,
            persistent: p.persistent,
            priority: narrow(p.priority, "message.priority")?,
            expiration_ms: p.expiration_ms,
        })
    }
}
