//! meta::{BindingDef, Destination} <-> log::{BindingDef, Destination}.

use warren_core::meta::{BindingDef, Destination};
use warren_rpc::log as pb;
use warren_rpc::log::destination::Kind;

use super::value::table_or_empty;
use super::{DecodeError, FromProto, IntoProto, required};

impl IntoProto<pb::Destination> for Destination {
    fn into_proto(self) -> pb::Destination {
        let kind = match self {
            Destination::Queue(q) => Kind::Queue(q),
            Destination::Exchange(x) => Kind::Exchange(x),
        };
        pb::Destination { kind: Some(kind) }
    }
}

impl FromProto<pb::Destination> for Destination {
    fn from_proto(p: pb::Destination) -> Result<Self, DecodeError> {
        Ok(match required(p.kind, "destination.kind")? {
            Kind::Queue(q) => Destination::Queue(q),
            Kind::Exchange(x) => Destination::Exchange(x),
        })
    }
}

impl IntoProto<pb::BindingDef> for BindingDef {
    fn into_proto(self) -> pb::BindingDef {
        pb::BindingDef {
            source: self.source,
            destination: Some(self.destination.into_proto()),
            routing_key: self.routing_key,
            arguments: Some(self.arguments.into_proto()),
        }
    }
}

impl FromProto<pb::BindingDef> for BindingDef {
    fn from_proto(p: pb::BindingDef) -> Result<Self, DecodeError> {
        Ok(BindingDef {
            source: p.source,
            destination: Destination::from_proto(required(p.destination, "binding.destination")?)?,
            routing_key: p.routing_key,
            arguments: table_or_empty(p.arguments)?,
        })
    }
}
