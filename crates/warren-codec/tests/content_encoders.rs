//! The hand-written basic.deliver / get-ok / return encoders write exactly
//! the bytes of the generic path (amq-protocol method + header + body frames).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use warren_codec::spec::basic;
use warren_codec::{
    AMQPClass, Frame, decode_frame, encode_body, encode_deliver, encode_get_ok, encode_header,
    encode_method, encode_properties, encode_return,
};

/// Generic path: method frame, content header (class 60), body frames.
fn generic(
    channel: u16,
    frame_max: u32,
    method: basic::AMQPMethod,
    raw: &[u8],
    body: &[u8],
) -> BytesMut {
    let mut out = BytesMut::new();
    encode_method(channel, &AMQPClass::Basic(method), &mut out);
    encode_header(channel, 60, body.len() as u64, raw, &mut out);
    encode_body(channel, body, frame_max, &mut out);
    out
}

fn frame_max() -> impl Strategy<Value = u32> {
    // Tiny values force many body frames; 0 means one unlimited frame.
    prop_oneof![Just(0u32), 9u32..64, 4096u32..140_000]
}

fn raw_props() -> impl Strategy<Value = Vec<u8>> {
    common::properties().prop_map(|p| {
        let mut raw = BytesMut::new();
        encode_properties(&p, &mut raw);
        raw.to_vec()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deliver_matches_generic(
        channel in any::<u16>(), fm in frame_max(),
        tag in common::short_string(), dtag in any::<u64>(), redelivered in any::<bool>(),
        exchange in common::short_string(), rk in common::short_string(),
        raw in raw_props(), body in vec(any::<u8>(), 0..5000),
    ) {
        let mut fast = BytesMut::new();
        encode_deliver(&mut fast, channel, fm, tag.as_str(), dtag, redelivered,
            exchange.as_str(), rk.as_str(), &raw, &body);
        let method = basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: tag, delivery_tag: dtag, redelivered, exchange, routing_key: rk,
        });
        prop_assert_eq!(fast, generic(channel, fm, method, &raw, &body));
    }

    #[test]
    fn get_ok_matches_generic(
        channel in any::<u16>(), fm in frame_max(),
        dtag in any::<u64>(), redelivered in any::<bool>(),
        exchange in common::short_string(), rk in common::short_string(),
        count in any::<u32>(), raw in raw_props(), body in vec(any::<u8>(), 0..5000),
    ) {
        let mut fast = BytesMut::new();
        encode_get_ok(&mut fast, channel, fm, dtag, redelivered, exchange.as_str(),
            rk.as_str(), count, &raw, &body);
        let method = basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: dtag, redelivered, exchange, routing_key: rk, message_count: count,
        });
        prop_assert_eq!(fast, generic(channel, fm, method, &raw, &body));
    }

    #[test]
    fn return_matches_generic(
        channel in any::<u16>(), fm in frame_max(), code in any::<u16>(),
        text in common::short_string(),
        exchange in common::short_string(), rk in common::short_string(),
        raw in raw_props(), body in vec(any::<u8>(), 0..5000),
    ) {
        let mut fast = BytesMut::new();
        encode_return(&mut fast, channel, fm, code, text.as_str(), exchange.as_str(),
            rk.as_str(), &raw, &body);
        let method = basic::AMQPMethod::Return(basic::Return {
            reply_code: code, reply_text: text, exchange, routing_key: rk,
        });
        prop_assert_eq!(fast, generic(channel, fm, method, &raw, &body));
    }

    /// Every body frame respects frame_max, and the pieces add up to the body.
    #[test]
    fn body_frames_respect_frame_max(fm in 9u32..300, body in vec(any::<u8>(), 0..3000)) {
        let mut out = BytesMut::new();
        encode_body(7, &body, fm, &mut out);
        let mut joined = Vec::new();
        while !out.is_empty() {
            let len = warren_codec::check_frame(&out, fm).unwrap().unwrap();
            prop_assert!(len <= fm as usize);
            match decode_frame(&mut out, fm).unwrap().unwrap() {
                Frame::Body { channel: 7, payload } => {
                    prop_assert!(!payload.is_empty());
                    joined.extend_from_slice(&payload);
                }
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        prop_assert_eq!(joined, body);
    }
}

#[test]
fn empty_body_gives_no_body_frame() {
    let mut out = BytesMut::new();
    encode_body(1, &[], 4096, &mut out);
    assert!(out.is_empty());
    encode_deliver(&mut out, 1, 4096, "ctag", 1, false, "", "q", &[0, 0], &[]);
    let mut frames = Vec::new();
    while let Some(f) = decode_frame(&mut out, 4096).unwrap() {
        frames.push(f);
    }
    assert_eq!(frames.len(), 2, "method + header only: {frames:?}");
}

/// Over-long short strings are cut at the last UTF-8 boundary at or below
/// 255 bytes, so the result still decodes (and is valid UTF-8).
#[test]
fn long_short_strings_are_truncated_on_a_char_boundary() {
    let tag = "é".repeat(200); // 400 bytes, 2 per char
    let rk = "r".repeat(300);
    let mut out = BytesMut::new();
    encode_deliver(&mut out, 1, 4096, &tag, 9, true, "x", &rk, &[0, 0], b"hi");
    let Frame::Method { method, .. } = decode_frame(&mut out, 4096).unwrap().unwrap() else {
        panic!("expected a method");
    };
    let AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) = *method else {
        panic!("expected basic.deliver, got {method:?}");
    };
    assert_eq!(d.consumer_tag.as_str(), "é".repeat(127));
    assert_eq!(d.routing_key.as_str(), "r".repeat(255));
    assert_eq!(d.delivery_tag, 9);
    assert!(d.redelivered);
}

/// Body payloads and header properties point into the read buffer: no copy.
#[test]
fn decoded_content_is_zero_copy() {
    let mut out = BytesMut::new();
    encode_deliver(
        &mut out,
        1,
        4096,
        "c",
        1,
        false,
        "",
        "q",
        &[0x80, 0, 1, b't'],
        b"payload",
    );
    let start = out.as_ptr() as usize;
    let end = start + out.len();
    let within = |p: *const u8| (start..end).contains(&(p as usize));
    let mut frames = Vec::new();
    while let Some(f) = decode_frame(&mut out, 4096).unwrap() {
        frames.push(f);
    }
    let [
        _,
        Frame::Header { properties, .. },
        Frame::Body { payload, .. },
    ] = &frames[..]
    else {
        panic!("unexpected frames {frames:?}");
    };
    assert_eq!(&properties[..], &[0x80, 0, 1, b't']);
    assert_eq!(&payload[..], b"payload");
    assert!(within(properties.as_ptr()) && within(payload.as_ptr()));
}
