//! queue::QueueImage<u64> <-> log::QueueImage (a queue group's snapshot).
//!
//! Messages go as columns of packed varints (see `MessageColumns` in
//! log.proto): ids and log indexes as wrapping deltas from the previous
//! message, so a backlog of a million messages costs a few megabytes, and
//! columns whose values are all zero are left empty.

use warren_core::queue::{
    CheckedOutMsg, ConsumerImage, ConsumerKey, Limit, MsgImage, OwnerId, QueueConfig, QueueImage,
    ReadyMsg,
};
use warren_rpc::log as pb;
use warren_rpc::log::consumer_image::Limit as PbLimit;

use super::{DecodeError, FromProto, IntoProto, invalid, narrow, required};

impl IntoProto<pb::QueueImage> for QueueImage<u64> {
    fn into_proto(self) -> pb::QueueImage {
        let requeued = self.ready.iter().map(|r| r.requeued).collect();
        let owners = self.checked_out.iter().map(|c| c.owner.0).collect();
        let seqs = self.checked_out.iter().map(|c| c.consumer);
        pb::QueueImage {
            config: Some(self.config.into_proto()),
            resource: self.resource,
            next_msg_id: self.next_msg_id,
            ready: Some(message_columns(self.ready.iter().map(|r| &r.msg))),
            ready_requeued: all_default_to_empty(requeued),
            checked_out: Some(message_columns(self.checked_out.iter().map(|c| &c.msg))),
            checked_out_owners: all_default_to_empty(owners),
            checked_out_consumers: Some(optional_column(seqs)),
            consumers: self.consumers.into_iter().map(consumer_to_pb).collect(),
            next_consumer_seq: self.next_consumer_seq,
            cursor: self.cursor,
        }
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

fn message_columns<'a>(msgs: impl Iterator<Item = &'a MsgImage<u64>>) -> pb::MessageColumns {
    let mut c = pb::MessageColumns::default();
    let (mut id, mut index) = (0, 0);
    let mut expiries = Vec::new();
    for m in msgs {
        c.id_deltas.push(delta(&mut id, m.id));
        c.log_index_deltas.push(delta(&mut index, m.payload));
        c.sizes.push(m.size);
        expiries.push(m.expiry);
        c.delivery_counts.push(m.delivery_count);
        c.priorities.push(u32::from(m.priority));
    }
    c.sizes = all_default_to_empty(c.sizes);
    c.delivery_counts = all_default_to_empty(c.delivery_counts);
    c.priorities = all_default_to_empty(c.priorities);
    c.expiries = Some(optional_column(expiries.into_iter()));
    c
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

fn optional_column(values: impl Iterator<Item = Option<u64>>) -> pb::OptionalColumn {
    let mut c = pb::OptionalColumn::default();
    let mut prev = 0;
    for v in values {
        c.present.push(v.is_some());
        if let Some(v) = v {
            c.deltas.push(delta(&mut prev, v));
        }
    }
    c.present = all_default_to_empty(c.present);
    c
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
