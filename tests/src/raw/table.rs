//! Decoding AMQP field tables, enough to read `connection.start`'s server
//! properties. Type tags follow RabbitMQ's table of the 0-9-1 errata, which
//! is what every client and broker actually uses.

use super::Reader;

/// One decoded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
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
    Decimal(u8, u32),
    LongString(Vec<u8>),
    Bytes(Vec<u8>),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(Vec<(String, FieldValue)>),
    Void,
}

impl FieldValue {
    /// The value of `key` when this is a table.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        match self {
            FieldValue::Table(entries) => lookup(entries, key),
            _ => None,
        }
    }
}

/// The value of `key` in a decoded table.
pub fn lookup<'a>(entries: &'a [(String, FieldValue)], key: &str) -> Option<&'a FieldValue> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Decodes a field table (a long size then name/value pairs).
pub fn decode_table(r: &mut Reader<'_>) -> anyhow::Result<Vec<(String, FieldValue)>> {
    let body = r.longstr()?;
    let mut inner = Reader::new(body);
    let mut out = Vec::new();
    while !inner.is_empty() {
        let name = String::from_utf8_lossy(inner.shortstr()?).into_owned();
        let value = decode_value(&mut inner)?;
        out.push((name, value));
    }
    Ok(out)
}

fn decode_value(r: &mut Reader<'_>) -> anyhow::Result<FieldValue> {
    let tag = r.octet()?;
    Ok(match tag {
        b't' => FieldValue::Bool(r.octet()? != 0),
        b'b' => FieldValue::I8(i8::from_be_bytes([r.octet()?])),
        b'B' => FieldValue::U8(r.octet()?),
        b's' => FieldValue::I16(i16::from_be_bytes(r.short()?.to_be_bytes())),
        b'u' => FieldValue::U16(r.short()?),
        b'I' => FieldValue::I32(i32::from_be_bytes(r.long()?.to_be_bytes())),
        b'i' => FieldValue::U32(r.long()?),
        b'l' => FieldValue::I64(i64::from_be_bytes(r.longlong()?.to_be_bytes())),
        b'f' => FieldValue::F32(f32::from_bits(r.long()?)),
        b'd' => FieldValue::F64(f64::from_bits(r.longlong()?)),
        b'D' => FieldValue::Decimal(r.octet()?, r.long()?),
        b'S' => FieldValue::LongString(r.longstr()?.to_vec()),
        b'x' => FieldValue::Bytes(r.longstr()?.to_vec()),
        b'A' => {
            let body = r.longstr()?;
            let mut inner = Reader::new(body);
            let mut items = Vec::new();
            while !inner.is_empty() {
                items.push(decode_value(&mut inner)?);
            }
            FieldValue::Array(items)
        }
        b'T' => FieldValue::Timestamp(r.longlong()?),
        b'F' => FieldValue::Table(decode_table(r)?),
        b'V' => FieldValue::Void,
        other => anyhow::bail!("unknown field type tag {:?}", char::from(other)),
    })
}
