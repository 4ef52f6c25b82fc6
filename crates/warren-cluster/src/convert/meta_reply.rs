//! Result<meta::MetaReply, meta::MetaError> <-> log::MetaResult.

use warren_core::meta::{MetaError, MetaReply};
use warren_rpc::log as pb;
use warren_rpc::log::meta_reply::{DeletedQueues, Reply as R};
use warren_rpc::log::meta_result::Result as Res;

use super::{DecodeError, FromProto, IntoProto, narrow, required};

fn vq((vhost, name): (String, String)) -> pb::VhostQueue {
    pb::VhostQueue { vhost, name }
}

impl IntoProto<pb::MetaReply> for MetaReply {
    fn into_proto(self) -> pb::MetaReply {
        let r = match self {
            MetaReply::Ok => R::Ok(pb::Empty {}),
            MetaReply::Created => R::Created(pb::Empty {}),
            MetaReply::Existed => R::Existed(pb::Empty {}),
            MetaReply::QueueDeleted { vhost, name } => R::QueueDeleted(vq((vhost, name))),
            MetaReply::Deleted(qs) => R::Deleted(DeletedQueues {
                queues: qs.into_iter().map(vq).collect(),
            }),
        };
        pb::MetaReply { reply: Some(r) }
    }
}

impl FromProto<pb::MetaReply> for MetaReply {
    fn from_proto(p: pb::MetaReply) -> Result<Self, DecodeError> {
        Ok(match required(p.reply, "meta_reply.reply")? {
            R::Ok(_) => MetaReply::Ok,
            R::Created(_) => MetaReply::Created,
            R::Existed(_) => MetaReply::Existed,
            R::QueueDeleted(q) => MetaReply::QueueDeleted {
                vhost: q.vhost,
                name: q.name,
            },
            R::Deleted(d) => {
                MetaReply::Deleted(d.queues.into_iter().map(|q| (q.vhost, q.name)).collect())
            }
        })
    }
}

impl IntoProto<pb::MetaResult> for Result<MetaReply, MetaError> {
    fn into_proto(self) -> pb::MetaResult {
        let r = match self {
            Ok(reply) => Res::Reply(reply.into_proto()),
            Err(e) => Res::Error(pb::MetaError {
                code: e.code.into(),
                text: e.text,
            }),
        };
        pb::MetaResult { result: Some(r) }
    }
}

impl FromProto<pb::MetaResult> for Result<MetaReply, MetaError> {
    fn from_proto(p: pb::MetaResult) -> Result<Self, DecodeError> {
        Ok(match required(p.result, "meta_result.result")? {
            Res::Reply(r) => Ok(MetaReply::from_proto(r)?),
            Res::Error(e) => Err(MetaError {
                code: narrow(e.code, "meta_error.code")?,
                text: e.text,
            }),
        })
    }
}
