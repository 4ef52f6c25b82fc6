//! A valid frame sequence decodes to the same frames however the bytes are
//! cut: split once at every byte boundary (sequences under 4000 bytes; longer
//! ones at every n-th boundary), and fed one byte at a time (always every
//! boundary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use warren_codec::{
    Frame, decode_frame, encode_body, encode_header, encode_heartbeat, encode_method,
    encode_properties,
};

const FRAME_MAX: u32 = 4096;

/// One step of a conversation, as the wire would carry it.
#[derive(Debug, Clone)]
enum Step {
    Method(u16, warren_codec::AMQPClass),
    Content(u16, Box<warren_codec::BasicProperties>, Vec<u8>),
    Heartbeat,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (any::<u16>(), common::any_method()).prop_map(|(c, m)| Step::Method(c, m)),
        // Bodies up to 10 KB cross several 4 KB frames.
        (
            any::<u16>(),
            common::properties(),
            vec(any::<u8>(), 0..10_000)
        )
            .prop_map(|(c, p, b)| Step::Content(c, Box::new(p), b)),
        Just(Step::Heartbeat),
    ]
}

fn encode(steps: &[Step]) -> BytesMut {
    let mut out = BytesMut::new();
    for s in steps {
        match s {
            Step::Method(channel, m) => encode_method(*channel, m, &mut out),
            Step::Content(channel, props, body) => {
                let mut raw = BytesMut::new();
                encode_properties(props, &mut raw);
                encode_header(*channel, 60, body.len() as u64, &raw, &mut out);
                encode_body(*channel, body, FRAME_MAX, &mut out);
            }
            Step::Heartbeat => encode_heartbeat(&mut out),
        }
    }
    out
}

/// Decodes everything `buf` holds, appending to `frames`.
fn drain(buf: &mut BytesMut, frames: &mut Vec<Frame>) {
    while let Some(f) = decode_frame(buf, FRAME_MAX).unwrap() {
        frames.push(f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_split_point_gives_the_same_frames(steps in vec(step(), 1..6)) {
        let wire = encode(&steps);
        let mut whole = wire.clone();
        let mut expected = Vec::new();
        drain(&mut whole, &mut expected);
        prop_assert!(whole.is_empty());

        // Splits every byte boundary inside small sequences; strides through
        // big ones so a case stays fast (every boundary of every frame header
        // is still hit by the byte-at-a-time pass below).
        let stride = (wire.len() / 2000).max(1);
        for cut in (0..=wire.len()).step_by(stride) {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut frames = Vec::new();
            drain(&mut buf, &mut frames);
            buf.extend_from_slice(&wire[cut..]);
            drain(&mut buf, &mut frames);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&frames, &expected, "cut at {}", cut);
        }

        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            drain(&mut buf, &mut frames);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(&frames, &expected);
    }
}
