//! queue::QueueImage<u64> <-> log::QueueImage (a queue group's snapshot).
//!
//! Messages go as columns of packed varints (see `MessageColumns` in
//! log.proto): ids and log indexes as wrapping deltas from the previous
//! message, so a backlog of a million messages costs a few megabytes, and
//! columns whose values are all zero are left empty.

use warren_core::queue::{
    CheckedOutMsg, ConsumerImage, ConsumerKey, Limit, MsgImage, OwnerId, QueueConfig, QueueImage,
    QueueState, ReadyMsg,
};
use warren_rpc::log as pb;
use warren_rpc::log::consumer_image::Limit as PbLimit;

use super::{DecodeError, FromProto, IntoProto, invalid, narrow, required};

impl IntoProto<pb::QueueImage> for QueueImage<u64> {
    fn into_proto(mut self) -> pb::QueueImage {
        let ready = std::mem::take(&mut self.ready);
        let checked_out = std::mem::take(&mut self.checked_out);
        image_to_pb(self, ready.into_iter(), checked_out.into_iter())
    }
}

/// The image of `state`, encoded message by message as it is read: a
/// deep queue's snapshot holds its columns (a few bytes per message), not
/// a copy of every message besides.
pub(crate) fn state_image_to_pb(state: &QueueState<u64>) -> pb::QueueImage {
    let (head, ready, checked_out) = state.image_parts();
    image_to_pb(head, ready, checked_out)
}

/// `head` (an image whose message lists are ignored) with `ready` and
/// `checked_out` as its messages.
fn image_to_pb(
    head: QueueImage<u64>,
    ready: impl Iterator<Item = ReadyMsg<u64>>,
    checked_out: impl Iterator<Item = CheckedOutMsg<u64>>,
) -> pb::QueueImage {
    let mut ready_columns = ColumnsBuilder::default();
    let mut requeued = Vec::new();
    for r in ready {
        ready_columns.push(&r.msg);
        requeued.push(r.requeued);
    }
    let mut out_columns = ColumnsBuilder::default();
    let mut owners = Vec::new();
    let mut seqs = OptionalBuilder::default();
    for c in checked_out {
        out_columns.push(&c.msg);
        owners.push(c.owner.0);
        seqs.push(c.consumer);
    }
    pb::QueueImage {
        config: Some(head.config.into_proto()),
        resource: head.resource,
        next_msg_id: head.next_msg_id,
        ready: Some(ready_columns.finish()),
        ready_requeued: all_default_to_empty(requeued),
        checked_out: Some(out_columns.finish()),
        checked_out_owners: all_default_to_empty(owners),
        checked_out_consumers: Some(seqs.finish()),
        consumers: head.consumers.into_iter().map(consumer_to_pb).collect(),
        next_consumer_seq: head.next_consumer_seq,
        cursor: head.cursor,
    }
}

impl FromProto<pb::QueueImage> for QueueImage<u64> {
    fn from_proto(p: pb::QueueImage) -> Result<Self, DecodeError> {
        let config = QueueConfig::from_proto(required(p.config, "queue_image.config")?)?;
        let ready = messages(p.ready.unwrap_or_default(), "queue_image.ready")?;
        let requeued = column(p.ready_requeued, ready.len(), "queue_image.ready_requeued")?;
        let ready = ready
            .into_iter()
            .zip(requeued)
            .map(|(msg, requeued)| ReadyMsg { msg, requeued })
            .collect();
        let out = messages(p.checked_out.unwrap_or_default(), "queue_image.checked_out")?;
        let n = out.len();
        let owners = column(p.checked_out_owners, n, "queue_image.checked_out_owners")?;
        let seqs = optional_values(
            p.checked_out_consumers.unwrap_or_default(),
            n,
            "queue_image.checked_out_consumers",
        )?;
        let checked_out = out
            .into_iter()
            .zip(owners.into_iter().zip(seqs))
            .map(|(msg, (owner, consumer))| CheckedOutMsg {
                owner: OwnerId(owner),
                consumer,
                msg,
            })
            .collect();
        let consumers = p.consumers.into_iter().map(consumer_from_pb);
        Ok(QueueImage {
            config,
            resource: p.resource,
            next_msg_id: p.next_msg_id,
            ready,
            checked_out,
            consumers: consumers.collect::<Result<_, _>>()?,
            next_consumer_seq: p.next_consumer_seq,
            cursor: p.cursor,
        })
    }
}

fn consumer_to_pb(c: ConsumerImage) -> pb::ConsumerImage {
    let limit = match c.limit {
        Limit::Prefetch(n) => PbLimit::Prefetch(n),
        Limit::Credit(n) => PbLimit::Credit(n),
    };
    pb::ConsumerImage {
        seq: c.seq,
        key: Some(c.key.into_proto()),
        no_ack: c.no_ack,
        exclusive: c.exclusive,
        limit: Some(limit),
        unacked: c.unacked,
    }
}

fn consumer_from_pb(p: pb::ConsumerImage) -> Result<ConsumerImage, DecodeError> {
    let limit = match required(p.limit, "consumer_image.limit")? {
        PbLimit::Prefetch(n) => Limit::Prefetch(n),
        PbLimit::Credit(n) => Limit::Credit(n),
    };
    Ok(ConsumerImage {
        seq: p.seq,
        key: ConsumerKey::from_proto(required(p.key, "consumer_image.key")?)?,
        no_ack: p.no_ack,
        exclusive: p.exclusive,
        limit,
        unacked: p.unacked,
    })
}

/// `MessageColumns`, one message at a time.
#[derive(Default)]
struct ColumnsBuilder {
    c: pb::MessageColumns,
    id: u64,
    index: u64,
    expiries: OptionalBuilder,
}

impl ColumnsBuilder {
    fn push(&mut self, m: &MsgImage<u64>) {
        let c = &mut self.c;
        c.id_deltas.push(delta(&mut self.id, m.id));
        c.log_index_deltas.push(delta(&mut self.index, m.payload));
        c.sizes.push(m.size);
        self.expiries.push(m.expiry);
        c.delivery_counts.push(m.delivery_count);
        c.priorities.push(u32::from(m.priority));
    }

    fn finish(self) -> pb::MessageColumns {
        let mut c = self.c;
        c.sizes = all_default_to_empty(c.sizes);
        c.delivery_counts = all_default_to_empty(c.delivery_counts);
        c.priorities = all_default_to_empty(c.priorities);
        c.expiries = Some(self.expiries.finish());
        c
    }
}

fn messages(c: pb::MessageColumns, field: &'static str) -> Result<Vec<MsgImage<u64>>, DecodeError> {
    let n = c.id_deltas.len();
    let ids = undelta(c.id_deltas);
    let indexes = undelta(column(c.log_index_deltas, n, field)?);
    let sizes = column(c.sizes, n, field)?;
    let expiries = optional_values(c.expiries.unwrap_or_default(), n, field)?;
    let counts = column(c.delivery_counts, n, field)?;
    let priorities = column(c.priorities, n, field)?;
    let rows = ids.into_iter().zip(indexes).zip(sizes).zip(expiries);
    let rows = rows.zip(counts).zip(priorities);
    rows.map(
        |(((((id, payload), size), expiry), delivery_count), priority)| {
            Ok(MsgImage {
                id,
                size,
                expiry,
                delivery_count,
                priority: narrow(priority, field)?,
                payload,
            })
        },
    )
    .collect()
}

/// An `OptionalColumn`, one value at a time.
#[derive(Default)]
struct OptionalBuilder {
    c: pb::OptionalColumn,
    prev: u64,
}

impl OptionalBuilder {
    fn push(&mut self, v: Option<u64>) {
        self.c.present.push(v.is_some());
        if let Some(v) = v {
            self.c.deltas.push(delta(&mut self.prev, v));
        }
    }

    fn finish(self) -> pb::OptionalColumn {
        let mut c = self.c;
        c.present = all_default_to_empty(c.present);
        c
    }
}

fn optional_values(
    c: pb::OptionalColumn,
    n: usize,
    field: &'static str,
) -> Result<Vec<Option<u64>>, DecodeError> {
    let present = column(c.present, n, field)?;
    if present.iter().filter(|p| **p).count() != c.deltas.len() {
        return Err(invalid(field, "values do not match the present flags"));
    }
    let mut values = undelta(c.deltas).into_iter();
    Ok(present
        .into_iter()
        .map(|p| if p { values.next() } else { None })
        .collect())
}

/// `v - prev`, wrapping, as the two's-complement i64 that sint64 zigzags
/// into a short varint when the two are close; `prev` becomes `v`.
fn delta(prev: &mut u64, v: u64) -> i64 {
    let d = v.wrapping_sub(*prev);
    *prev = v;
    i64::from_ne_bytes(d.to_ne_bytes())
}

fn undelta(deltas: Vec<i64>) -> Vec<u64> {
    let mut prev = 0u64;
    deltas
        .into_iter()
        .map(|d| {
            prev = prev.wrapping_add(u64::from_ne_bytes(d.to_ne_bytes()));
            prev
        })
        .collect()
}

/// A column of `n` entries, where empty stands for `n` defaults.
fn column<T: Default + Clone>(
    v: Vec<T>,
    n: usize,
    field: &'static str,
) -> Result<Vec<T>, DecodeError> {
    match v.len() {
        0 => Ok(vec![T::default(); n]),
        len if len == n => Ok(v),
        len => Err(invalid(
            field,
            format!("a column of {len} for {n} messages"),
        )),
    }
}

fn all_default_to_empty<T: Default + PartialEq>(v: Vec<T>) -> Vec<T> {
    let zero = T::default();
    if v.iter().all(|x| *x == zero) {
        Vec::new()
    } else {
        v
    }
}
