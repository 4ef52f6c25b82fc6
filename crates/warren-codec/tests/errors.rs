//! Bad input: each framing and decoding fault gives its typed error, the
//! reply code RabbitMQ would use, and never a panic or unbounded buffering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, BytesMut};
use warren_codec::{
    AMQPClass, AMQPValue, CodecErrorKind, FieldTable, Frame, ProtocolHeaderCheck, ShortString,
    check_frame, check_protocol_header, decode_frame, encode_method, parse_properties, spec,
};

const FRAME_MAX: u32 = 131_072;

/// A raw frame with the given type, channel and payload.
fn frame(frame_type: u8, channel: u16, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(frame_type);
    b.put_u16(channel);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.put_u8(0xCE);
    b
}

fn publish() -> AMQPClass {
    AMQPClass::Basic(spec::basic::AMQPMethod::Publish(spec::basic::Publish {
        exchange: "amq.topic".into(),
        routing_key: "a.b".into(),
        mandatory: true,
        immediate: false,
    }))
}

/// Payload (without framing) of an encoded method.
fn method_payload(m: &AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_method(1, m, &mut out);
    out[7..out.len() - 1].to_vec()
}

#[test]
fn wrong_frame_end() {
    let mut buf = frame(8, 0, &[]);
    buf[7] = 0x00;
    let before = buf.clone();
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::BadFrameEnd { found: 0 });
    assert_eq!(err.offset, 7);
    assert_eq!(err.reply_code(), 501);
    assert_eq!(buf, before, "a failed decode leaves the buffer alone");
}

#[test]
fn frame_over_frame_max_is_refused_from_the_header_alone() {
    // Payload of frame_max + 1, but only the 7 header bytes have arrived.
    let mut header = BytesMut::new();
    header.put_u8(3);
    header.put_u16(1);
    header.put_u32(FRAME_MAX + 1);
    let err = decode_frame(&mut header, FRAME_MAX).unwrap_err();
    assert_eq!(
        err.kind,
        CodecErrorKind::FrameTooLarge {
            size: u64::from(FRAME_MAX) + 9,
            max: FRAME_MAX
        }
    );
    assert_eq!(err.reply_code(), 501);
}

#[test]
fn four_gib_frame_is_refused_after_seven_bytes() {
    let header = [1u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xF0];
    let err = check_frame(&header, FRAME_MAX).unwrap_err();
    assert_eq!(
        err.kind,
        CodecErrorKind::FrameTooLarge {
            size: 0xFFFF_FFF0 + 8,
            max: FRAME_MAX
        }
    );
    // Six bytes are not enough to know the size yet.
    assert_eq!(check_frame(&header[..6], FRAME_MAX).unwrap(), None);
}

/// RabbitMQ compares the payload (not payload + 8) with frame_max, because
/// many clients get the framing bytes wrong; we accept the same frames.
#[test]
fn payload_of_exactly_frame_max_is_accepted() {
    let body = vec![7u8; 4096];
    let mut buf = frame(3, 1, &body);
    let f = decode_frame(&mut buf, 4096).unwrap().unwrap();
    assert!(matches!(f, Frame::Body { payload, .. } if payload.len() == 4096));
    let mut buf = frame(3, 1, &[7u8; 4097]);
    assert!(decode_frame(&mut buf, 4096).is_err());
}

#[test]
fn unknown_frame_type_is_refused_from_the_first_byte() {
    let err = check_frame(b"A", FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::UnknownFrameType(b'A'));
    assert_eq!(err.reply_code(), 501);
    let mut buf = frame(4, 0, &[]);
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::UnknownFrameType(4));
}

#[test]
fn unknown_method_ids() {
    for (class_id, method_id) in [(60u16, 999u16), (1000, 10), (40, 41), (0, 0)] {
        let mut payload = Vec::new();
        payload.extend_from_slice(&class_id.to_be_bytes());
        payload.extend_from_slice(&method_id.to_be_bytes());
        payload.extend_from_slice(&[0; 8]);
        let mut buf = frame(1, 1, &payload);
        let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
        assert_eq!(
            err.kind,
            CodecErrorKind::UnknownMethod {
                class_id,
                method_id
            }
        );
        assert_eq!(err.reply_code(), 540);
        assert_eq!(err.class_method(), (class_id, method_id));
    }
}

#[test]
fn truncated_method_payload_is_a_syntax_error() {
    let payload = method_payload(&publish());
    for cut in 4..payload.len() {
        let mut buf = frame(1, 1, &payload[..cut]);
        let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
        assert_eq!(err.kind, CodecErrorKind::Syntax, "cut at {cut}");
        // RabbitMQ answers undecodable fields with 501 ("cannot decode").
        assert_eq!(err.reply_code(), 501);
        assert_eq!(err.class_method(), (60, 40));
    }
}

#[test]
fn trailing_bytes_after_method_fields_are_a_syntax_error() {
    let mut payload = method_payload(&publish());
    let len = payload.len();
    payload.push(0);
    let mut buf = frame(1, 1, &payload);
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::Syntax);
    assert_eq!(err.offset, 7 + len);
}

#[test]
fn method_payload_too_short_for_ids() {
    let mut buf = frame(1, 1, &[0, 60, 0]);
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(
        err.kind,
        CodecErrorKind::BadPayloadSize {
            frame_type: 1,
            size: 3
        }
    );
}

#[test]
fn invalid_utf8_short_string_is_a_syntax_error() {
    // queue.declare with queue name bytes FF FE.
    let payload = [0, 50, 0, 10, 0, 0, 2, 0xFF, 0xFE, 0, 0, 0, 0, 0];
    let mut buf = frame(1, 1, &payload);
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::Syntax);
}

#[test]
fn heartbeat_on_channel_5_is_reported_with_its_channel() {
    let mut buf = frame(8, 5, &[]);
    let f = decode_frame(&mut buf, FRAME_MAX).unwrap().unwrap();
    assert_eq!(f, Frame::Heartbeat { channel: 5 });
    assert!(buf.is_empty());
}

#[test]
fn heartbeat_with_payload_is_a_frame_error() {
    let err = check_frame(&frame(8, 0, &[1]), FRAME_MAX).unwrap_err();
    assert_eq!(
        err.kind,
        CodecErrorKind::BadPayloadSize {
            frame_type: 8,
            size: 1
        }
    );
    assert_eq!(err.reply_code(), 501);
}

#[test]
fn content_header_weight_must_be_zero() {
    let mut payload = vec![0, 60, 0, 1];
    payload.extend_from_slice(&5u64.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    let mut buf = frame(2, 1, &payload);
    let err = decode_frame(&mut buf, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::NonZeroWeight { found: 1 });
    assert_eq!(err.offset, 9);
    assert_eq!(err.reply_code(), 505);
}

#[test]
fn content_header_too_short() {
    let err = check_frame(&frame(2, 1, &[0, 60, 0, 0]), FRAME_MAX).unwrap_err();
    assert_eq!(
        err.kind,
        CodecErrorKind::BadPayloadSize {
            frame_type: 2,
            size: 4
        }
    );
}

#[test]
fn malformed_properties() {
    // content-type flagged, but the string is cut short.
    let err = parse_properties(&[0x80, 0x00, 5, b'a']).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::BadProperties);
    assert_eq!(err.reply_code(), 502);
    // Bytes left over after the last flagged property.
    let err = parse_properties(&[0x00, 0x00, 1]).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::BadProperties);
    assert_eq!(err.offset, 2);
    // A single byte cannot even hold the flags.
    assert!(parse_properties(&[0x80]).is_err());
    // Unknown field type letter in the headers table.
    let err = parse_properties(&[0x20, 0x00, 0, 0, 0, 3, 1, b'k', b'?']).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::BadProperties);
}

#[test]
fn empty_properties_mean_none() {
    assert_eq!(
        parse_properties(&[]).unwrap(),
        warren_codec::BasicProperties::default()
    );
}

/// amq-protocol writes `AMQPValue::ShortString` with type letter '_', which
/// nothing parses. The broker must not put one in a table it sends; if it
/// does, the frame is refused by our own decoder (as it would be by a
/// client) rather than panicking anywhere.
#[test]
fn short_string_table_values_do_not_round_trip() {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("k"), AMQPValue::ShortString("v".into()));
    let declare = AMQPClass::Queue(spec::queue::AMQPMethod::Declare(spec::queue::Declare {
        queue: "q".into(),
        arguments: args,
        ..Default::default()
    }));
    let mut out = BytesMut::new();
    encode_method(1, &declare, &mut out);
    let err = decode_frame(&mut out, FRAME_MAX).unwrap_err();
    assert_eq!(err.kind, CodecErrorKind::Syntax);
}

#[test]
fn protocol_headers() {
    use ProtocolHeaderCheck::*;
    assert_eq!(check_protocol_header(b""), NeedMore);
    assert_eq!(check_protocol_header(b"AMQ"), NeedMore);
    assert_eq!(check_protocol_header(b"AMQP\x00\x00\x09\x01"), Ok);
    assert_eq!(check_protocol_header(b"AMQP\x00\x00\x09\x01\x01\x00"), Ok);
    // 0-9, which RabbitMQ serves as 0-9-1.
    assert_eq!(check_protocol_header(b"AMQP\x01\x01\x00\x09"), Ok);
    assert_eq!(check_protocol_header(b"AMQP\x00\x00\x09\x00"), Unsupported);
    assert_eq!(check_protocol_header(b"AMQP\x00\x01\x00\x00"), Unsupported);
    assert_eq!(check_protocol_header(b"AMQP\x03\x01\x00\x00"), Unsupported);
    assert_eq!(check_protocol_header(b"GET"), Unsupported);
    assert_eq!(check_protocol_header(b"\x16\x03\x01"), Unsupported);
}

#[test]
fn error_messages_are_readable() {
    let err = check_frame(&[1u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xF0], FRAME_MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "frame of 4294967288 bytes exceeds frame_max 131072 (at byte 3)"
    );
}
