//! Fuzzes the untrusted-input side of warren-codec: frame decoding from a
//! client byte stream, content properties, and the protocol header check.
//! Beyond "no panic", it checks that whatever decodes re-encodes to bytes
//! that decode and re-encode to the same bytes again (encode . decode is
//! idempotent), which catches encoder/decoder disagreements.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_codec::{
    Frame, check_protocol_header, decode_frame, encode_frame, encode_properties,
    parse_properties,
};

/// Small enough that the fuzzer reaches the size limit, big enough for
/// realistic frames.
const FRAME_MAX: u32 = 4096;

fn reencode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out);
    out
}

fn check_frame_idempotent(frame: &Frame) {
    let once = reencode(frame);
    let mut buf = once.clone();
    // The encoder never writes more than it was given, so a payload that fit
    // frame_max still fits: no limit needed here.
    let again = match decode_frame(&mut buf, 0) {
        Ok(Some(f)) => f,
        other => panic!("re-encoded {frame:?} does not decode: {other:?}"),
    };
    assert!(buf.is_empty(), "re-encoded frame left {} bytes", buf.len());
    assert_eq!(reencode(&again), once, "encode/decode not idempotent");
}

fn check_properties(raw: &[u8]) {
    if let Ok(props) = parse_properties(raw) {
        let mut once = BytesMut::new();
        encode_properties(&props, &mut once);
        let reparsed = parse_properties(&once).expect("re-encoded properties parse");
        let mut twice = BytesMut::new();
        encode_properties(&reparsed, &mut twice);
        assert_eq!(once, twice, "properties encode/parse not idempotent");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = check_protocol_header(data);
    check_properties(data);

    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, FRAME_MAX) {
        check_frame_idempotent(&frame);
        if let Frame::Header { properties, .. } = &frame {
            check_properties(properties);
        }
    }
});
