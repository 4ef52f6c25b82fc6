//! Field values as RabbitMQ names and prints them, and its equivalence
//! rules for redeclaring an exchange or queue with arguments.
//!
//! RabbitMQ formats values with Erlang's `~p`, and its reply texts are part
//! of what clients observe, so the formatting here imitates Erlang terms.

use crate::routing::values_equal;
use crate::value::{Table, Value};

use super::error::MetaError;

/// RabbitMQ's name for a field value's type (`rabbit_binary_parser`).
pub fn value_type_name(v: &Value) -> &'static str {
    match v {
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
        // RabbitMQ's dialect has no short strings in tables; they arrive as longstr.
        Value::ShortString(_) | Value::LongString(_) => "longstr",
        Value::Array(_) => "array",
        Value::Timestamp(_) => "timestamp",
        Value::Table(_) => "table",
        Value::ByteArray(_) => "binary",
        Value::Void => "void",
    }
}

/// `rabbit_misc:type_class/1`: integer widths compare as one class.
fn type_class(v: &Value) -> &'static str {
    match value_type_name(v) {
        "byte" | "short" | "signedint" | "long" | "decimal" | "unsignedbyte" | "unsignedshort"
        | "unsignedint" => "int",
        "float" | "double" => "float",
        other => other,
    }
}

fn binary(v: &Value) -> Option<String> {
    match v {
        Value::ShortString(s) => Some(s.clone()),
        Value::LongString(b) | Value::ByteArray(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn float_term(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// The value printed as Erlang's `~p` would print RabbitMQ's term for it.
pub fn erlang_term(v: &Value) -> String {
    if let Some(s) = binary(v) {
        return format!("<<\"{s}\">>");
    }
    match v {
        Value::Bool(b) => b.to_string(),
        Value::F32(f) => float_term(f64::from(*f)),
        Value::F64(f) => float_term(*f),
        Value::Decimal { scale, value } => format!("{{{scale},{value}}}"),
        Value::Timestamp(t) => t.to_string(),
        Value::Void => "undefined".to_owned(),
        Value::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| format!("{{{},{}}}", value_type_name(i), erlang_term(i)))
                .collect();
            format!("[{}]", inner.join(","))
        }
        Value::Table(t) => {
            let inner: Vec<String> = t
                .iter()
                .map(|(k, i)| format!("{{<<\"{k}\">>,{},{}}}", value_type_name(i), erlang_term(i)))
                .collect();
            format!("[{}]", inner.join(","))
        }
        other => other.as_i64().map(|i| i.to_string()).unwrap_or_default(),
    }
}

/// `rabbit_misc:val/1` on a bare value: binaries unquoted, others as `~p`.
fn bare(v: &Value) -> String {
    binary(v).unwrap_or_else(|| erlang_term(v))
}

/// `rabbit_misc:val/1` on an optional `{Type, Value}`.
fn typed(v: Option<&Value>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => format!("the value '{}' of type '{}'", bare(v), value_type_name(v)),
    }
}

/// The 406 of `rabbit_misc:equivalence_fail/4`; `received` and `current`
/// are already formatted as `val/1` would.
pub(crate) fn inequivalent(
    field: &str,
    resource: &str,
    received: &str,
    current: &str,
) -> MetaError {
    MetaError::precondition_failed(format!(
        "inequivalent arg '{field}' for {resource}: received {received} but current is {current}"
    ))
}

/// `rabbit_misc:assert_field_equivalence/4` for plain fields (durable, type...).
pub(crate) fn assert_field<T: PartialEq + std::fmt::Display>(
    current: T,
    received: T,
    field: &str,
    resource: &str,
) -> Result<(), MetaError> {
    if current == received {
        return Ok(());
    }
    Err(inequivalent(
        field,
        resource,
        &format!("'{received}'"),
        &format!("'{current}'"),
    ))
}

fn is_classic(v: Option<&Value>) -> bool {
    v.and_then(binary).is_some_and(|s| s == "classic")
}

/// `rabbit_misc:assert_args_equivalence/4`: only `keys` are compared;
/// integers of any width compare by value; a missing `x-queue-type` equals
/// `classic`.
pub(crate) fn assert_args(
    current: &Table,
    received: &Table,
    resource: &str,
    keys: &[&str],
) -> Result<(), MetaError> {
    for key in keys {
        let (cur, new) = (current.get(*key), received.get(*key));
        match (cur, new) {
            (None, None) => {}
            (Some(c), Some(n)) => {
                let same = type_class(c) == type_class(n) && values_equal(c, n);
                if !same && erlang_term(c) != erlang_term(n) {
                    let (rv, cv) = (format!("'{}'", bare(n)), format!("'{}'", bare(c)));
                    return Err(inequivalent(key, resource, &rv, &cv));
                }
            }
            (c, n) => {
                if *key == "x-queue-type" && (is_classic(c) || is_classic(n)) {
                    continue;
                }
                return Err(inequivalent(key, resource, &typed(n), &typed(c)));
            }
        }
    }
    Ok(())
}

/// Queue arguments RabbitMQ 3.10 compares on redeclare (`declare_args/0`);
/// all others may differ freely.
pub(crate) const QUEUE_EQUIVALENCE_KEYS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-max-segment-size",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The only exchange argument RabbitMQ compares on redeclare.
pub(crate) const EXCHANGE_EQUIVALENCE_KEYS: &[&str] = &["alternate-exchange"];
