//! Dead-lettering: a message a queue discards (rejected, expired, over its
//! length limit, over its delivery limit) is republished to the queue's
//! dead-letter exchange with an `x-death` history, as RabbitMQ does.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use warren_codec::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use warren_core::message::Message;
use warren_core::queue::DeadLetterReason;
use warren_core::value::Table;

/// Where a queue's discarded messages go (`x-dead-letter-exchange` and
/// optionally `x-dead-letter-routing-key`).
#[derive(Debug, Clone)]
pub struct DeadLetterTarget {
    pub exchange: String,
    pub routing_key: Option<String>,
}

impl DeadLetterTarget {
    /// Reads the target from a queue's declare arguments.
    pub fn from_arguments(args: &Table) -> Option<DeadLetterTarget> {
        let exchange = args.get("x-dead-letter-exchange")?.as_str()?.to_string();
        let routing_key = args
            .get("x-dead-letter-routing-key")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Some(DeadLetterTarget {
            exchange,
            routing_key,
        })
    }
}

/// Builds the message to republish: same body, properties with an updated
/// `x-death` header, and the dead-letter exchange and routing key.
pub fn dead_lettered(
    queue: &str,
    target: &DeadLetterTarget,
    msg: &Message,
    reason: DeadLetterReason,
) -> Message {
    let reason_text = reason_str(reason);
    let mut props = warren_codec::parse_properties(&msg.properties).unwrap_or_default();
    let mut headers = props.headers().clone().unwrap_or_default();
    add_death(&mut headers, queue, msg, reason_text);
    if !headers.contains_key("x-first-death-reason") {
        headers.insert("x-first-death-reason".into(), long(reason_text));
        headers.insert("x-first-death-queue".into(), long(queue));
        headers.insert("x-first-death-exchange".into(), long(&msg.exchange));
    }
    let mut expiration_removed = false;
    if reason == DeadLetterReason::Expired && props.expiration().is_some() {
        expiration_removed = true;
    }
    props = props.with_headers(headers);
    if expiration_removed {
        // RabbitMQ drops the per-message TTL so the message does not expire again at once.
        let mut p = warren_codec::BasicProperties::default();
        p = copy_without_expiration(&props, p);
        props = p;
    }
    let mut raw = BytesMut::new();
    warren_codec::encode_properties(&props, &mut raw);
    Message {
        exchange: target.exchange.clone(),
        routing_key: target
            .routing_key
            .clone()
            .unwrap_or_else(|| msg.routing_key.clone()),
        properties: raw.freeze(),
        body: msg.body.clone(),
        persistent: msg.persistent,
        priority: msg.priority,
        expiration_ms: if expiration_removed {
            None
        } else {
            msg.expiration_ms
        },
    }
}

fn reason_str(r: DeadLetterReason) -> &'static str {
    match r {
        DeadLetterReason::Rejected => "rejected",
        DeadLetterReason::Expired => "expired",
        DeadLetterReason::MaxLen => "maxlen",
        DeadLetterReason::DeliveryLimit => "delivery_limit",
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Adds or bumps the x-death entry for (queue, reason), most recent first.
fn add_death(headers: &mut FieldTable, queue: &str, msg: &Message, reason: &str) {
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        matches!(t.inner().get("queue"), Some(AMQPValue::LongString(q)) if q.as_bytes() == queue.as_bytes())
            && matches!(t.inner().get("reason"), Some(AMQPValue::LongString(r)) if r.as_bytes() == reason.as_bytes())
    };
    let found = deaths
        .iter()
        .position(|d| matches!(d, AMQPValue::FieldTable(t) if same(t)));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut entry = match found.map(|i| deaths.remove(i)) {
        Some(AMQPValue::FieldTable(t)) => t,
        _ => FieldTable::default(),
    };
    let count = match entry.inner().get("count") {
        Some(AMQPValue::LongLongInt(c)) => *c + 1,
        _ => 1,
    };
    entry.insert("count".into(), AMQPValue::LongLongInt(count));
    entry.insert("reason".into(), long(reason));
    entry.insert("queue".into(), long(queue));
    entry.insert("time".into(), AMQPValue::Timestamp(now));
    entry.insert("exchange".into(), long(&msg.exchange));
    let mut keys = FieldArray::default();
    keys.push(long(&msg.routing_key));
    entry.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
    deaths.insert(0, AMQPValue::FieldTable(entry));
    let mut arr = FieldArray::default();
    for d in deaths {
        arr.push(d);
    }
    headers.insert(ShortString::from("x-death"), AMQPValue::FieldArray(arr));
}

fn copy_without_expiration(
    from: &warren_codec::BasicProperties,
    mut to: warren_codec::BasicProperties,
) -> warren_codec::BasicProperties {
    if let Some(v) = from.content_type() {
        to = to.with_content_type(v.clone());
    }
    if let Some(v) = from.content_encoding() {
        to = to.with_content_encoding(v.clone());
    }
    if let Some(v) = from.headers() {
        to = to.with_headers(v.clone());
    }
    if let Some(v) = from.delivery_mode() {
        to = to.with_delivery_mode(*v);
    }
    if let Some(v) = from.priority() {
        to = to.with_priority(*v);
    }
    if let Some(v) = from.correlation_id() {
        to = to.with_correlation_id(v.clone());
    }
    if let Some(v) = from.reply_to() {
        to = to.with_reply_to(v.clone());
    }
    if let Some(v) = from.message_id() {
        to = to.with_message_id(v.clone());
    }
    if let Some(v) = from.timestamp() {
        to = to.with_timestamp(*v);
    }
    if let Some(v) = from.kind() {
        to = to.with_type(v.clone());
    }
    if let Some(v) = from.user_id() {
        to = to.with_user_id(v.clone());
    }
    if let Some(v) = from.app_id() {
        to = to.with_app_id(v.clone());
    }
    if let Some(v) = from.cluster_id() {
        to = to.with_cluster_id(v.clone());
    }
    to
}
