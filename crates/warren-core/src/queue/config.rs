//! Queue configuration from the x-arguments of queue.declare, validated as
//! RabbitMQ validates them (`rabbit_amqqueue:declare_args/0`), with the same
//! error texts.

use crate::value::{Table, Value};

use super::error::{QueueError, UNNAMED};

/// Largest TTL RabbitMQ accepts (`?MAX_EXPIRY_TIMER`, 2^32 - 1 ms).
const MAX_EXPIRY_MS: i64 = 4_294_967_295;

/// Largest x-max-priority RabbitMQ accepts (`?MAX_SUPPORTED_PRIORITY`).
const MAX_PRIORITY: u64 = 255;

/// What happens when a publish would take the queue over its length limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message (publisher gets basic.nack).
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

/// The queue-machine-relevant settings of a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// x-message-ttl
    pub message_ttl_ms: Option<u64>,
    /// x-max-length (counts ready messages)
    pub max_length: Option<u64>,
    /// x-max-length-bytes (counts bodies of ready messages)
    pub max_length_bytes: Option<u64>,
    /// x-overflow
    pub overflow: Overflow,
    /// Whether x-dead-letter-exchange is set; the driver does the republish.
    pub dead_letter: bool,
    /// x-delivery-limit: a message returned more often than this is
    /// dead-lettered or dropped. Negative (RabbitMQ 4's -1) means no limit.
    pub delivery_limit: Option<u32>,
    /// x-single-active-consumer
    pub single_active_consumer: bool,
    /// x-max-priority: deliver higher `priority` properties first, with
    /// priorities above this treated as this. `None`: a plain FIFO that
    /// ignores the property. `Some(0)` is accepted (as RabbitMQ does) and
    /// behaves as a FIFO. Only an argument in RabbitMQ, never a policy.
    pub max_priority: Option<u8>,
}

impl QueueConfig {
    /// Parses the arguments this machine acts on; others are ignored (they
    /// belong to the metadata layer, e.g. x-expires, x-queue-type). The
    /// error names the queue only as "queue"; see [`QueueConfig::from_declare`].
    pub fn from_arguments(args: &Table) -> Result<QueueConfig, QueueError> {
        let mut config = QueueConfig::default();
        for (key, value) in args {
            let checked = match key.as_str() {
                "x-message-ttl" => expiry(value).map(|v| config.message_ttl_ms = Some(v)),
                "x-max-length" => non_neg_int(value).map(|v| config.max_length = Some(v)),
                "x-max-length-bytes" => {
                    non_neg_int(value).map(|v| config.max_length_bytes = Some(v))
                }
                "x-overflow" => overflow(value).map(|v| config.overflow = v),
                "x-dead-letter-exchange" => dlx_name(value).map(|()| config.dead_letter = true),
                "x-delivery-limit" => delivery_limit(value).map(|v| config.delivery_limit = v),
                "x-single-active-consumer" => {
                    boolean(value).map(|v| config.single_active_consumer = v)
                }
                "x-max-priority" => max_priority(value).map(|v| config.max_priority = Some(v)),
                _ => Ok(()),
            };
            checked.map_err(|reason| QueueError::InvalidArgument {
                arg: key.clone(),
                reason,
                resource: UNNAMED.to_owned(),
            })?;
        }
        Ok(config)
    }

    /// [`QueueConfig::from_arguments`] with the queue named in the error text,
    /// as RabbitMQ names it: "invalid arg 'x-max-length' for queue 'q' in vhost '/': …".
    pub fn from_declare(args: &Table, vhost: &str, queue: &str) -> Result<QueueConfig, QueueError> {
        QueueConfig::from_arguments(args).map_err(|e| e.in_queue(vhost, queue))
    }
}

/// The AMQP type name RabbitMQ prints for a field value in error terms.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "bool",
        Value::I8(_) => "byte",
        Value::U8(_) => "unsignedbyte",
        Value::I16(_) => "short",
        Value::U16(_) => "unsignedshort",
        Value::I32(_) => "signedint",
        Value::U32(_) => "unsignedint",
        Value::I64(_) => "long",
        Value::F32(_) => "float",
        Value::F64(_) => "double",
        Value::Decimal { .. } => "decimal",
        Value::ShortString(_) | Value::LongString(_) => "longstr",
        Value::Array(_) => "array",
        Value::Timestamp(_) => "timestamp",
        Value::Table(_) => "table",
        Value::ByteArray(_) => "binary",
        Value::Void => "void",
    }
}

/// Integer types only (RabbitMQ's `?INTEGER_ARG_TYPES` excludes timestamps).
fn int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Timestamp(_) => Err(expected_integer(value)),
        _ => value.as_i64().ok_or_else(|| expected_integer(value)),
    }
}

fn expected_integer(value: &Value) -> String {
    // RabbitMQ formats this reason as a string, then prints it with ~p,
    // hence the quotes.
    format!("\"expected integer, got {}\"", type_name(value))
}

fn non_neg_int(value: &Value) -> Result<u64, String> {
    let v = int(value)?;
    u64::try_from(v).map_err(|_| format!("{{value_negative,{v}}}"))
}

fn expiry(value: &Value) -> Result<u64, String> {
    let v = non_neg_int(value)?;
    if v > MAX_EXPIRY_MS.unsigned_abs() {
        // rabbit_misc:check_expiry/1's term.
        return Err(format!("{{value_too_big,{v}}}"));
    }
    Ok(v)
}

/// `rabbit_amqqueue:check_max_priority_arg/2`: a non-negative integer up
/// to 255.
fn max_priority(value: &Value) -> Result<u8, String> {
    let v = non_neg_int(value)?;
    if v > MAX_PRIORITY {
        return Err(format!("{{max_value_exceeded,{v}}}"));
    }
    Ok(u8::try_from(v).unwrap_or(u8::MAX))
}

fn delivery_limit(value: &Value) -> Result<Option<u32>, String> {
    let v = int(value)?;
    if v < 0 {
        return Ok(None);
    }
    Ok(Some(u32::try_from(v).unwrap_or(u32::MAX)))
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

fn dlx_name(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(_) => Ok(()),
        None => Err(format!("{{unacceptable_type,{}}}", type_name(value))),
    }
}

fn overflow(value: &Value) -> Result<Overflow, String> {
    let Some(text) = value.as_str() else {
        return Err(format!("{{unacceptable_type,{}}}", type_name(value)));
    };
    match text {
        "drop-head" => Ok(Overflow::DropHead),
        "reject-publish" => Ok(Overflow::RejectPublish),
        "reject-publish-dlx" => Ok(Overflow::RejectPublishDlx),
        _ => Err("invalid_overflow".to_owned()),
    }
}
