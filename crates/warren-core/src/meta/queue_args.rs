//! Validation of a new queue's arguments and properties, with RabbitMQ
//! 3.10's texts (`rabbit_amqqueue:check_declare_arguments/2` and the
//! quorum/stream queue property checks).
//!
//! Errors are 406 PRECONDITION_FAILED "invalid arg 'K' for queue 'q' in
//! vhost '/': REASON", where REASON is the Erlang error term as `~p` prints
//! it (`{value_negative,-1}`, `"expected integer, got longstr"`), because
//! clients and their tests see exactly that.

use crate::value::Value;

use super::args::value_type_name;
use super::error::MetaError;
use super::types::QueueDef;

/// Largest TTL/expiry RabbitMQ accepts (Erlang's timer limit).
const MAX_EXPIRY: i64 = 4_294_967_295;
const MAX_PRIORITY: i64 = 255;

type Check = fn(&Value, &QueueDef) -> Result<(), String>;

/// In RabbitMQ's order; the first failure is reported.
const VALIDATORS: &[(&str, Check)] = &[
    ("x-expires", expires),
    ("x-message-ttl", message_ttl),
    ("x-dead-letter-exchange", dlx_name),
    ("x-dead-letter-routing-key", dlx_routing_key),
    ("x-max-length", non_neg_int),
    ("x-max-length-bytes", non_neg_int),
    ("x-max-in-memory-length", non_neg_int),
    ("x-max-in-memory-bytes", non_neg_int),
    ("x-max-priority", max_priority),
    ("x-overflow", overflow),
    ("x-queue-mode", queue_mode),
    ("x-single-active-consumer", boolean),
    ("x-queue-type", queue_type),
    ("x-quorum-initial-group-size", group_size),
    ("x-max-age", max_age),
    ("x-max-segment-size", non_neg_int),
    ("x-initial-cluster-size", group_size),
    ("x-queue-leader-locator", leader_locator),
];

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::I8(_)
        | Value::I16(_)
        | Value::I32(_)
        | Value::I64(_)
        | Value::U8(_)
        | Value::U16(_)
        | Value::U32(_) => v
            .as_i64()
            .ok_or_else(|| format!("\"expected integer, got {}\"", value_type_name(v))),
        _ => Err(format!("\"expected integer, got {}\"", value_type_name(v))),
    }
}

fn expiry(n: i64) -> Result<(), String> {
    if n > MAX_EXPIRY {
        Err(format!("{{value_too_big,{n}}}"))
    } else if n < 0 {
        Err(format!("{{value_negative,{n}}}"))
    } else {
        Ok(())
    }
}

fn expires(v: &Value, _: &QueueDef) -> Result<(), String> {
    match int(v)? {
        0 => Err("{value_zero,0}".to_owned()),
        n => expiry(n),
    }
}

fn message_ttl(v: &Value, _: &QueueDef) -> Result<(), String> {
    expiry(int(v)?)
}

fn non_neg(v: &Value) -> Result<i64, String> {
    match int(v)? {
        n if n < 0 => Err(format!("{{value_negative,{n}}}")),
        n => Ok(n),
    }
}

fn non_neg_int(v: &Value, _: &QueueDef) -> Result<(), String> {
    non_neg(v).map(|_| ())
}

fn max_priority(v: &Value, _: &QueueDef) -> Result<(), String> {
    match non_neg(v)? {
        n if n > MAX_PRIORITY => Err(format!("{{max_value_exceeded,{n}}}")),
        _ => Ok(()),
    }
}

fn group_size(v: &Value, _: &QueueDef) -> Result<(), String> {
    match non_neg(v)? {
        0 => Err("{value_zero,0}".to_owned()),
        _ => Ok(()),
    }
}

fn unacceptable(v: &Value) -> String {
    format!("{{unacceptable_type,{}}}", value_type_name(v))
}

/// A string argument; other types are `{unacceptable_type,T}`.
fn string(v: &Value) -> Result<&str, String> {
    match v {
        Value::ShortString(_) | Value::LongString(_) => v.as_str().ok_or_else(|| unacceptable(v)),
        _ => Err(unacceptable(v)),
    }
}

fn dlx_name(v: &Value, _: &QueueDef) -> Result<(), String> {
    string(v).map(|_| ())
}

fn dlx_routing_key(v: &Value, q: &QueueDef) -> Result<(), String> {
    string(v)?;
    if q.arguments.contains_key("x-dead-letter-exchange") {
        Ok(())
    } else {
        Err("routing_key_but_no_dlx_defined".to_owned())
    }
}

fn one_of(v: &Value, known: &[&str], unknown: impl Fn(&str) -> String) -> Result<(), String> {
    let s = string(v)?;
    if known.contains(&s) {
        Ok(())
    } else {
        Err(unknown(s))
    }
}

fn overflow(v: &Value, _: &QueueDef) -> Result<(), String> {
    one_of(
        v,
        &["drop-head", "reject-publish", "reject-publish-dlx"],
        |_| "invalid_overflow".to_owned(),
    )
}

fn queue_mode(v: &Value, _: &QueueDef) -> Result<(), String> {
    one_of(v, &["default", "lazy"], |s| {
        format!("\"unsupported queue mode '{s}'\"")
    })
}

fn queue_type(v: &Value, _: &QueueDef) -> Result<(), String> {
    one_of(v, &["classic", "quorum", "stream"], |s| {
        format!("\"unsupported queue type '{s}'\"")
    })
}

fn leader_locator(v: &Value, _: &QueueDef) -> Result<(), String> {
    one_of(v, &["client-local", "random", "least-leaders"], |_| {
        "invalid_queue_locator_arg".to_owned()
    })
}

fn boolean(v: &Value, _: &QueueDef) -> Result<(), String> {
    match v {
        Value::Bool(_) => Ok(()),
        _ => Err(unacceptable(v)),
    }
}

/// `x-max-age` is a positive count followed by one unit letter.
fn max_age(v: &Value, _: &QueueDef) -> Result<(), String> {
    let s = string(v)?;
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (count, unit) = s.split_at(digits);
    let positive = count.parse::<u64>().is_ok_and(|n| n > 0);
    if positive && ["Y", "M", "D", "h", "m", "s"].contains(&unit) {
        Ok(())
    } else {
        Err("invalid_max_age".to_owned())
    }
}

/// Checks a queue about to be created. `resource` is `queue 'q' in vhost 'v'`.
pub(crate) fn validate_new_queue(q: &QueueDef, resource: &str) -> Result<(), MetaError> {
    for (key, check) in VALIDATORS {
        if let Some(v) = q.arguments.get(*key) {
            check(v, q).map_err(|reason| {
                MetaError::precondition_failed(format!(
                    "invalid arg '{key}' for {resource}: {reason}"
                ))
            })?;
        }
    }
    let replicated = matches!(
        q.arguments.get("x-queue-type").and_then(Value::as_str),
        Some("quorum" | "stream")
    );
    if replicated {
        // Quorum and stream queues are always durable, shared and kept.
        let property = if q.auto_delete {
            Some("auto-delete")
        } else if q.exclusive_owner.is_some() {
            Some("exclusive-owner")
        } else if !q.durable {
            Some("non-durable")
        } else {
            None
        };
        if let Some(p) = property {
            return Err(MetaError::precondition_failed(format!(
                "invalid property '{p}' for {resource}"
            )));
        }
    }
    Ok(())
}
