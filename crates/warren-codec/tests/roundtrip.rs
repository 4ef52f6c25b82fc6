//! Property tests: every method of every class and content properties
//! survive encode -> decode unchanged, and re-encode to the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use proptest::prelude::*;
use warren_codec::{
    Frame, decode_frame, encode_header, encode_method, encode_properties, is_known_method,
    parse_properties,
};

const FRAME_MAX: u32 = 1 << 20;

proptest! {
    // 66 methods drawn uniformly: 1024 cases miss a given one with
    // probability ~2e-7.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn every_method_round_trips(channel in any::<u16>(), method in common::any_method()) {
        prop_assert!(is_known_method(method.get_amqp_class_id(), method.get_amqp_method_id()));
        let mut out = BytesMut::new();
        encode_method(channel, &method, &mut out);
        let wire = out.clone();
        let frame = decode_frame(&mut out, FRAME_MAX).unwrap().unwrap();
        prop_assert!(out.is_empty());
        prop_assert_eq!(
            &frame,
            &Frame::Method { channel, method: Box::new(method) }
        );
        let mut again = BytesMut::new();
        warren_codec::encode_frame(&frame, &mut again);
        prop_assert_eq!(again, wire);
    }

    #[test]
    fn properties_round_trip(props in common::properties()) {
        let mut raw = BytesMut::new();
        encode_properties(&props, &mut raw);
        prop_assert_eq!(&parse_properties(&raw).unwrap(), &props);
    }

    #[test]
    fn all_14_properties_round_trip_through_a_header_frame(
        props in common::all_properties(),
        channel in any::<u16>(),
        body_size in any::<u64>(),
    ) {
        let mut raw = BytesMut::new();
        encode_properties(&props, &mut raw);
        let mut out = BytesMut::new();
        encode_header(channel, 60, body_size, &raw, &mut out);
        let frame = decode_frame(&mut out, FRAME_MAX).unwrap().unwrap();
        let Frame::Header { channel: ch, class_id, body_size: bs, properties } = frame else {
            panic!("not a header: {frame:?}");
        };
        prop_assert_eq!((ch, class_id, bs), (channel, 60, body_size));
        prop_assert_eq!(&properties[..], &raw[..]);
        prop_assert_eq!(parse_properties(&properties).unwrap(), props);
    }

    /// Floats are generated finite above so values compare equal; here any
    /// bit pattern (NaN payloads included) must survive byte-for-byte.
    #[test]
    fn float_bits_survive(f in any::<u32>(), d in any::<u64>()) {
        use warren_codec::{AMQPValue, FieldTable, ShortString};
        let mut table = FieldTable::default();
        table.insert(ShortString::from("f"), AMQPValue::Float(f32::from_bits(f)));
        table.insert(ShortString::from("d"), AMQPValue::Double(f64::from_bits(d)));
        let props = warren_codec::BasicProperties::default().with_headers(table);
        let mut raw = BytesMut::new();
        encode_properties(&props, &mut raw);
        let mut again = BytesMut::new();
        encode_properties(&parse_properties(&raw).unwrap(), &mut again);
        prop_assert_eq!(raw, again);
    }
}

/// The other direction of `is_known_method`: every id it accepts reaches a
/// real amq-protocol parser (given enough zero bytes, which are valid empty
/// strings/tables and zero integers for every field).
#[test]
fn every_known_id_has_a_parser() {
    let mut known = 0;
    for class_id in 0..=100u16 {
        for method_id in 0..=200u16 {
            if !is_known_method(class_id, method_id) {
                continue;
            }
            known += 1;
            let mut payload = Vec::new();
            payload.extend_from_slice(&class_id.to_be_bytes());
            payload.extend_from_slice(&method_id.to_be_bytes());
            payload.extend_from_slice(&[0; 64]);
            let parsed = warren_codec::spec::parse_class(&payload[..]);
            let (_, method) = parsed.unwrap_or_else(|e| panic!("{class_id}.{method_id}: {e}"));
            assert_eq!(
                (method.get_amqp_class_id(), method.get_amqp_method_id()),
                (class_id, method_id)
            );
        }
    }
    // 14 connection + 6 channel + 2 access + 8 exchange + 10 queue
    // + 18 basic + 2 confirm + 6 tx.
    assert_eq!(known, 66);
}
