//! meta::QueueDef <-> log::QueueDef.

use warren_core::meta::QueueDef;
use warren_rpc::log as pb;

use super::value::table_or_empty;
use super::{DecodeError, FromProto, IntoProto};

impl IntoProto<pb::QueueDef> for QueueDef {
    fn into_proto(self) -> pb::QueueDef {
        pb::QueueDef {
            name: self.name,
            durable: self.durable,
            exclusive_owner: self.exclusive_owner,
            auto_delete: self.auto_delete,
            arguments: Some(self.arguments.into_proto()),
            home: self.home,
        }
    }
}

impl FromProto<pb::QueueDef> for QueueDef {
    fn from_proto(p: pb::QueueDef) -> Result<Self, DecodeError> {
        Ok(QueueDef {
            name: p.name,
            durable: p.durable,
            exclusive_owner: p.exclusive_owner,
            auto_delete: p.auto_delete,
            arguments: table_or_empty(p.arguments)?,
            home: p.home,
        })
    }
}
