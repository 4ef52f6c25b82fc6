//! meta::{ExchangeDef, ExchangeKind} <-> log::{ExchangeDef, ExchangeKind}.

use warren_core::meta::{ExchangeDef, ExchangeKind};
use warren_rpc::log as pb;

use super::value::table_or_empty;
use super::{DecodeError, FromProto, IntoProto, invalid};

impl IntoProto<pb::ExchangeKind> for ExchangeKind {
    fn into_proto(self) -> pb::ExchangeKind {
        match self {
            ExchangeKind::Direct => pb::ExchangeKind::Direct,
            ExchangeKind::Fanout => pb::ExchangeKind::Fanout,
            ExchangeKind::Topic => pb::ExchangeKind::Topic,
            ExchangeKind::Headers => pb::ExchangeKind::Headers,
        }
    }
}

impl FromProto<i32> for ExchangeKind {
    fn from_proto(p: i32) -> Result<Self, DecodeError> {
        match pb::ExchangeKind::try_from(p) {
            Ok(pb::ExchangeKind::Direct) => Ok(ExchangeKind::Direct),
            Ok(pb::ExchangeKind::Fanout) => Ok(ExchangeKind::Fanout),
            Ok(pb::ExchangeKind::Topic) => Ok(ExchangeKind::Topic),
            Ok(pb::ExchangeKind::Headers) => Ok(ExchangeKind::Headers),
            Ok(pb::ExchangeKind::Unspecified) | Err(_) => {
                Err(invalid("exchange.kind", p.to_string()))
            }
        }
    }
}

impl IntoProto<pb::ExchangeDef> for ExchangeDef {
    fn into_proto(self) -> pb::ExchangeDef {
        let kind: pb::ExchangeKind = self.kind.into_proto();
        pb::ExchangeDef {
            name: self.name,
            kind: kind.into(),
            durable: self.durable,
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: Some(self.arguments.into_proto()),
        }
    }
}

impl FromProto<pb::ExchangeDef> for ExchangeDef {
    fn from_proto(p: pb::ExchangeDef) -> Result<Self, DecodeError> {
        Ok(ExchangeDef {
            name: p.name,
            kind: ExchangeKind::from_proto(p.kind)?,
            durable: p.durable,
            auto_delete: p.auto_delete,
            internal: p.internal,
            arguments: table_or_empty(p.arguments)?,
        })
    }
}
