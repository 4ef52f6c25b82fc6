//! warren_core::value::{Value, Table} <-> log::{Value, Table}.

use warren_core::value::{Table, Value};
use warren_rpc::log as pb;
use warren_rpc::log::value::Kind;

use super::{DecodeError, FromProto, IntoProto, narrow, required};

impl IntoProto<pb::Value> for Value {
    fn into_proto(self) -> pb::Value {
        let kind = match self {
            Value::Bool(v) => Kind::Bool(v),
            Value::I8(v) => Kind::I8(v.into()),
            Value::U8(v) => Kind::U8(v.into()),
            Value::I16(v) => Kind::I16(v.into()),
            Value::U16(v) => Kind::U16(v.into()),
            Value::I32(v) => Kind::I32(v),
            Value::U32(v) => Kind::U32(v),
            Value::I64(v) => Kind::I64(v),
            Value::F32(v) => Kind::F32(v),
            Value::F64(v) => Kind::F64(v),
            Value::Decimal { scale, value } => Kind::Decimal(pb::Decimal {
                scale: scale.into(),
                value,
            }),
            Value::ShortString(s) => Kind::ShortString(s),
            Value::LongString(b) => Kind::LongString(b),
            Value::Array(items) => Kind::Array(pb::ValueArray {
                values: items.into_iter().map(IntoProto::into_proto).collect(),
            }),
            Value::Timestamp(t) => Kind::Timestamp(t),
            Value::Table(t) => Kind::Table(t.into_proto()),
            Value::ByteArray(b) => Kind::ByteArray(b),
            Value::Void => Kind::Void(pb::Void {}),
        };
        pb::Value { kind: Some(kind) }
    }
}

impl FromProto<pb::Value> for Value {
    fn from_proto(p: pb::Value) -> Result<Self, DecodeError> {
        Ok(match required(p.kind, "value.kind")? {
            Kind::Bool(v) => Value::Bool(v),
            Kind::I8(v) => Value::I8(narrow(v, "value.i8")?),
            Kind::U8(v) => Value::U8(narrow(v, "value.u8")?),
            Kind::I16(v) => Value::I16(narrow(v, "value.i16")?),
            Kind::U16(v) => Value::U16(narrow(v, "value.u16")?),
            Kind::I32(v) => Value::I32(v),
            Kind::U32(v) => Value::U32(v),
            Kind::I64(v) => Value::I64(v),
            Kind::F32(v) => Value::F32(v),
            Kind::F64(v) => Value::F64(v),
            Kind::Decimal(d) => Value::Decimal {
                scale: narrow(d.scale, "value.decimal.scale")?,
                value: d.value,
            },
            Kind::ShortString(s) => Value::ShortString(s),
            Kind::LongString(b) => Value::LongString(b),
            Kind::Array(a) => Value::Array(
                a.values
                    .into_iter()
                    .map(Value::from_proto)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Timestamp(t) => Value::Timestamp(t),
            Kind::Table(t) => Value::Table(Table::from_proto(t)?),
            Kind::ByteArray(b) => Value::ByteArray(b),
            Kind::Void(_) => Value::Void,
        })
    }
}

impl IntoProto<pb::Table> for Table {
    fn into_proto(self) -> pb::Table {
        // A BTreeMap iterates in key order: the same table always encodes
        // to the same bytes.
        let entries = self
            .into_iter()
            .map(|(key, v)| pb::TableEntry {
                key,
                value: Some(v.into_proto()),
            })
            .collect();
        pb::Table { entries }
    }
}

impl FromProto<pb::Table> for Table {
    fn from_proto(p: pb::Table) -> Result<Self, DecodeError> {
        p.entries
            .into_iter()
            .map(|e| Ok((e.key, Value::from_proto(required(e.value, "table.value")?)?)))
            .collect()
    }
}

/// An optional table field (absent = empty, as proto3 encodes an empty message).
pub(crate) fn table_or_empty(t: Option<pb::Table>) -> Result<Table, DecodeError> {
    t.map_or_else(|| Ok(Table::new()), Table::from_proto)
}
