//! AMQP field values as domain types.
//!
//! The frontend converts the wire representation (amq-protocol's `AMQPValue`)
//! into these with `From` impls in warren-amqp; nothing here knows the wire.

use std::collections::BTreeMap;

use bytes::Bytes;

/// A field table: declare arguments, binding arguments, message headers.
/// Ordered by key so that equality and iteration are deterministic.
pub type Table = BTreeMap<String, Value>;

/// One AMQP field value (the RabbitMQ dialect of 0-9-1 field types).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal { scale: u8, value: u32 },
    ShortString(String),
    LongString(Bytes),
    Array(Vec<Value>),
    Timestamp(u64),
    Table(Table),
    ByteArray(Bytes),
    Void,
}

impl Value {
    /// The value as a signed integer, for arguments such as `x-message-ttl`
    /// that clients send with whatever integer width their library picks.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::U8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text, for string arguments (short or long string).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::ShortString(s) => Some(s),
            Value::LongString(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}
