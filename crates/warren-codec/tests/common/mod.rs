//! proptest strategies shared by the integration tests: every method of
//! every class, field values of every type RabbitMQ's table dialect has, and
//! content properties with any subset of the 14 basic properties.
#![allow(dead_code)] // each test binary uses a different subset

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::Union;
use warren_codec::{
    AMQPValue, BasicProperties, ByteArray, DecimalValue, FieldArray, FieldTable, LongString,
    ShortString,
};

mod basic;
mod methods;
#[allow(unused_imports)] // content_encoders.rs uses only the value strategies
pub use methods::any_method;

/// Mostly short strings of any printable text, sometimes close to the
/// 255-byte limit.
pub fn short_string() -> BoxedStrategy<ShortString> {
    prop_oneof![
        4 => "\\PC{0,24}",
        1 => "[a-z]{250,255}",
    ]
    .prop_map(ShortString::from)
    .boxed()
}

pub fn long_string() -> BoxedStrategy<LongString> {
    vec(any::<u8>(), 0..48).prop_map(LongString::from).boxed()
}

/// Finite floats only, so values compare equal after a round trip (NaN does
/// not equal itself); bit-exactness is checked on the bytes instead.
fn finite_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn finite_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Every field type of RabbitMQ's dialect: t b B s u I i l f d D S T x V,
/// plus A and F below. `AMQPValue::ShortString` is left out on purpose:
/// amq-protocol writes it with type letter '_', which no peer (not even
/// amq-protocol) parses, and RabbitMQ's dialect has no short-string type
/// ('s' is a signed 16-bit int). tests/errors.rs pins that behaviour.
fn leaf_value() -> BoxedStrategy<AMQPValue> {
    Union::new(vec![
        any::<bool>().prop_map(AMQPValue::Boolean).boxed(),
        any::<i8>().prop_map(AMQPValue::ShortShortInt).boxed(),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt).boxed(),
        any::<i16>().prop_map(AMQPValue::ShortInt).boxed(),
        any::<u16>().prop_map(AMQPValue::ShortUInt).boxed(),
        any::<i32>().prop_map(AMQPValue::LongInt).boxed(),
        any::<u32>().prop_map(AMQPValue::LongUInt).boxed(),
        any::<i64>().prop_map(AMQPValue::LongLongInt).boxed(),
        finite_f32().prop_map(AMQPValue::Float).boxed(),
        finite_f64().prop_map(AMQPValue::Double).boxed(),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value }))
            .boxed(),
        long_string().prop_map(AMQPValue::LongString).boxed(),
        any::<u64>().prop_map(AMQPValue::Timestamp).boxed(),
        vec(any::<u8>(), 0..32)
            .prop_map(|b| AMQPValue::ByteArray(ByteArray::from(b)))
            .boxed(),
        Just(AMQPValue::Void).boxed(),
    ])
    .boxed()
}

fn table_key() -> impl Strategy<Value = ShortString> {
    "\\PC{0,12}".prop_map(ShortString::from)
}

/// Any value, with arrays and tables nested up to 3 levels.
pub fn field_value() -> BoxedStrategy<AMQPValue> {
    leaf_value()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
                btree_map(table_key(), inner, 0..5)
                    .prop_map(|m| AMQPValue::FieldTable(FieldTable::from(m))),
            ]
        })
        .boxed()
}

pub fn field_table() -> BoxedStrategy<FieldTable> {
    btree_map(table_key(), field_value(), 0..6)
        .prop_map(FieldTable::from)
        .boxed()
}

type Opt<T> = Option<T>;
type First = (
    Opt<ShortString>,
    Opt<ShortString>,
    Opt<FieldTable>,
    Opt<u8>,
    Opt<u8>,
    Opt<ShortString>,
    Opt<ShortString>,
);
type Second = (
    Opt<ShortString>,
    Opt<ShortString>,
    Opt<u64>,
    Opt<ShortString>,
    Opt<ShortString>,
    Opt<ShortString>,
    Opt<ShortString>,
);

/// The 14 properties in flag order; `opt` decides whether each may be absent.
macro_rules! props_strategy {
    ($opt:path) => {
        (
            (
                $opt(short_string()),
                $opt(short_string()),
                $opt(field_table()),
                $opt(any::<u8>()),
                $opt(any::<u8>()),
                $opt(short_string()),
                $opt(short_string()),
            ),
            (
                $opt(short_string()),
                $opt(short_string()),
                $opt(any::<u64>()),
                $opt(short_string()),
                $opt(short_string()),
                $opt(short_string()),
                $opt(short_string()),
            ),
        )
            .prop_map(build_properties)
            .boxed()
    };
}

fn build_properties((first, second): (First, Second)) -> BasicProperties {
    let (ct, ce, hd, dm, pr, ci, rt) = first;
    let (ex, mi, ts, ty, ui, ai, cl) = second;
    let mut p = BasicProperties::default();
    macro_rules! set {
        ($opt:expr, $with:ident) => {
            if let Some(v) = $opt {
                p = p.$with(v);
            }
        };
    }
    set!(ct, with_content_type);
    set!(ce, with_content_encoding);
    set!(hd, with_headers);
    set!(dm, with_delivery_mode);
    set!(pr, with_priority);
    set!(ci, with_correlation_id);
    set!(rt, with_reply_to);
    set!(ex, with_expiration);
    set!(mi, with_message_id);
    set!(ts, with_timestamp);
    set!(ty, with_type);
    set!(ui, with_user_id);
    set!(ai, with_app_id);
    set!(cl, with_cluster_id);
    p
}

fn always<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    s.prop_map(Some)
}

/// Any subset of the 14 properties (each present about half the time).
pub fn properties() -> BoxedStrategy<BasicProperties> {
    props_strategy!(proptest::option::of)
}

/// All 14 properties set, so the full flag word is exercised every time.
pub fn all_properties() -> BoxedStrategy<BasicProperties> {
    props_strategy!(always)
}
