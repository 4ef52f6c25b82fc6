//! Where a queued message's body lives: in its `Enqueue` log entry while the
//! log still holds it, then (after the log is purged past it, if it is still
//! unsettled) in the store's `bodies`, keyed by that same index. Stored
//! bodies are encoded `warren.log.v1.Message` values.

use std::io;

use bytes::Bytes;
use openraft::EntryPayload;
use prost::Message as _;
use warren_rpc::log as pb;
use warren_storage::{GroupId, LogStore};

use super::codec::decode_entry;
use super::io_err;

/// The message of a stored queue-group entry, if it is an `Enqueue`.
pub(crate) fn message_in_entry(payload: Bytes) -> Result<Option<pb::Message>, io::Error> {
    let EntryPayload::Normal(req) = decode_entry(payload).map_err(io_err)?.payload else {
        return Ok(None);
    };
    let p = pb::Proposal::decode(req.0).map_err(io_err)?;
    let Some(pb::proposal::Command::Queue(q)) = p.command else {
        return Ok(None);
    };
    let Some(pb::queue_command::Command::Enqueue(e)) = q.command else {
        return Ok(None);
    };
    match e.payload {
        Some(pb::queue_command::enqueue::Payload::Message(m)) => Ok(Some(m)),
        _ => Ok(None),
    }
}

/// The message enqueued at `index`: from the bodies, else from the log.
pub(crate) fn read_message<S: LogStore>(
    store: &S,
    group: GroupId,
    index: u64,
) -> Result<Option<pb::Message>, io::Error> {
    // The moved bodies first: a point lookup. Reading a purged index from
    // the log would seek across the tombstones of every purged entry after
    // it (measured: 17 s for the first 500 deliveries of a 100k backlog).
    if let Some(b) = store.get_body(group, index).map_err(io_err)? {
        return Ok(Some(pb::Message::decode(b).map_err(io_err)?));
    }
    let in_log = store
        .entries(group, index..index.saturating_add(1))
        .map_err(io_err)?;
    match in_log.into_iter().next() {
        Some(e) => message_in_entry(e.payload),
        None => Ok(None),
    }
}
