//! Wire field values (amq-protocol's, via warren-codec) to and from the
//! domain's `warren_core::value` types. Wire types stop at this file.

use bytes::Bytes;
use warren_codec::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use warren_core::value::{Table, Value};

/// Wire table to domain table.
pub fn table_from_wire(t: &FieldTable) -> Table {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), value_from_wire(v)))
        .collect()
}

/// Domain table to wire table.
pub fn table_to_wire(t: &Table) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in t {
        out.insert(ShortString::from(k.as_str()), value_to_wire(v));
    }
    out
}

pub fn value_from_wire(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::I8(*i),
        AMQPValue::ShortShortUInt(i) => Value::U8(*i),
        AMQPValue::ShortInt(i) => Value::I16(*i),
        AMQPValue::ShortUInt(i) => Value::U16(*i),
        AMQPValue::LongInt(i) => Value::I32(*i),
        AMQPValue::LongUInt(i) => Value::U32(*i),
        AMQPValue::LongLongInt(i) => Value::I64(*i),
        AMQPValue::Float(f) => Value::F32(*f),
        AMQPValue::Double(f) => Value::F64(*f),
        AMQPValue::DecimalValue(d) => Value::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => Value::ShortString(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::LongString(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::FieldArray(a) => {
            Value::Array(a.as_slice().iter().map(value_from_wire).collect())
        }
        AMQPValue::Timestamp(t) => Value::Timestamp(*t),
        AMQPValue::FieldTable(t) => Value::Table(table_from_wire(t)),
        AMQPValue::ByteArray(b) => Value::ByteArray(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Void => Value::Void,
    }
}

pub fn value_to_wire(v: &Value) -> AMQPValue {
    match v {
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::I8(i) => AMQPValue::ShortShortInt(*i),
        Value::U8(i) => AMQPValue::ShortShortUInt(*i),
        Value::I16(i) => AMQPValue::ShortInt(*i),
        Value::U16(i) => AMQPValue::ShortUInt(*i),
        Value::I32(i) => AMQPValue::LongInt(*i),
        Value::U32(i) => AMQPValue::LongUInt(*i),
        Value::I64(i) => AMQPValue::LongLongInt(*i),
        Value::F32(f) => AMQPValue::Float(*f),
        Value::F64(f) => AMQPValue::Double(*f),
        Value::Decimal { scale, value } => AMQPValue::DecimalValue(warren_codec::DecimalValue {
            scale: *scale,
            value: *value,
        }),
        Value::ShortString(s) => AMQPValue::ShortString(ShortString::from(s.as_str())),
        Value::LongString(b) => AMQPValue::LongString(LongString::from(b.to_vec())),
        Value::Array(a) => {
            let mut arr = FieldArray::default();
            for v in a {
                arr.push(value_to_wire(v));
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Timestamp(t) => AMQPValue::Timestamp(*t),
        Value::Table(t) => AMQPValue::FieldTable(table_to_wire(t)),
        Value::ByteArray(b) => AMQPValue::ByteArray(warren_codec::ByteArray::from(b.to_vec())),
        Value::Void => AMQPValue::Void,
    }
}
