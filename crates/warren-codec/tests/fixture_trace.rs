//! Decodes every frame of a real pika <-> RabbitMQ 3.10.8 conversation
//! (shared/fixtures/amqp-trace-rabbitmq-3.10.8) and re-encodes each one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use warren_codec::{
    AMQPClass, Frame, ProtocolHeaderCheck, check_protocol_header, decode_frame, encode_frame,
    parse_properties, spec,
};

/// frame_max both peers negotiated in the recording.
const FRAME_MAX: u32 = 131_072;

/// `$CARGO_MANIFEST_DIR/../../../shared` (repo and shared/ side by side), else
/// `$WARREN_SHARED_DIR`. Missing fixtures fail the test: a silent pass would
/// hide that the conformance check never ran.
fn trace_dir() -> PathBuf {
    let rel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let candidates = [
        Some(rel),
        std::env::var_os("WARREN_SHARED_DIR").map(PathBuf::from),
    ];
    for dir in candidates.into_iter().flatten() {
        let trace = dir.join("fixtures/amqp-trace-rabbitmq-3.10.8");
        if trace.is_dir() {
            return trace;
        }
    }
    panic!(
        "fixtures not found: expected {}/../../../shared/fixtures/amqp-trace-rabbitmq-3.10.8 \
         or $WARREN_SHARED_DIR/fixtures/amqp-trace-rabbitmq-3.10.8",
        env!("CARGO_MANIFEST_DIR")
    );
}

fn read(name: &str) -> Vec<u8> {
    let path = trace_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Decodes all frames, returning each with its exact wire bytes.
fn decode_all(bytes: &[u8]) -> Vec<(Frame, Vec<u8>)> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        let before = buf.clone();
        match decode_frame(&mut buf, FRAME_MAX) {
            Ok(Some(frame)) => {
                let used = before.len() - buf.len();
                frames.push((frame, before[..used].to_vec()));
            }
            Ok(None) => break,
            Err(e) => panic!("frame {} failed to decode: {e}", frames.len()),
        }
    }
    assert!(buf.is_empty(), "{} trailing bytes not a frame", buf.len());
    frames
}

/// Whether amq-protocol's types cannot hold `method` exactly:
/// - field tables are BTreeMaps, so entries come back sorted by key rather
///   than in wire order;
/// - reserved fields are dropped and re-encoded as zero/empty, and pika sends
///   connection.open with the reserved `insist` bit set.
fn lossy(method: &AMQPClass) -> bool {
    use spec::{basic, connection, exchange, queue};
    matches!(
        method,
        AMQPClass::Connection(connection::AMQPMethod::Open(_))
            | AMQPClass::Connection(connection::AMQPMethod::Start(_))
            | AMQPClass::Connection(connection::AMQPMethod::StartOk(_))
            | AMQPClass::Exchange(exchange::AMQPMethod::Declare(_))
            | AMQPClass::Exchange(exchange::AMQPMethod::Bind(_))
            | AMQPClass::Exchange(exchange::AMQPMethod::Unbind(_))
            | AMQPClass::Queue(queue::AMQPMethod::Declare(_))
            | AMQPClass::Queue(queue::AMQPMethod::Bind(_))
            | AMQPClass::Queue(queue::AMQPMethod::Unbind(_))
            | AMQPClass::Basic(basic::AMQPMethod::Consume(_))
    )
}

/// Re-encodes every frame. Every frame must come back byte-identical except
/// `lossy` methods, which must come back the same length and decode to the
/// same value. Returns the kinds of frames that differed.
fn reencode_all(frames: &[(Frame, Vec<u8>)]) -> Vec<String> {
    let mut differed = Vec::new();
    for (i, (frame, wire)) in frames.iter().enumerate() {
        let mut out = BytesMut::new();
        encode_frame(frame, &mut out);
        if out[..] == wire[..] {
            continue;
        }
        let Frame::Method { method, .. } = frame else {
            panic!("frame {i} ({frame:?}) re-encoded differently");
        };
        assert!(
            lossy(method),
            "frame {i} ({method:?}) re-encoded differently"
        );
        assert_eq!(out.len(), wire.len(), "frame {i} changed length");
        let again = decode_frame(&mut out, FRAME_MAX).unwrap().unwrap();
        assert_eq!(&again, frame, "frame {i} changed meaning");
        differed.push(kind(frame));
    }
    differed
}

fn kind(frame: &Frame) -> String {
    match frame {
        Frame::Method { method, .. } => format!(
            "{}.{}",
            method.get_amqp_class_id(),
            method.get_amqp_method_id()
        ),
        Frame::Header { .. } => "header".to_owned(),
        Frame::Body { .. } => "body".to_owned(),
        Frame::Heartbeat { .. } => "heartbeat".to_owned(),
    }
}

fn kinds(frames: &[(Frame, Vec<u8>)]) -> Vec<String> {
    frames.iter().map(|(f, _)| kind(f)).collect()
}

#[test]
fn client_to_server_decodes_and_reencodes() {
    let bytes = read("client-to-server.bin");
    assert_eq!(check_protocol_header(&bytes), ProtocolHeaderCheck::Ok);
    let frames = decode_all(&bytes[8..]);
    let differed = reencode_all(&frames);
    eprintln!("client: {:?}", kinds(&frames));
    // start-ok: client-properties table order; open: reserved insist bit.
    assert_eq!(differed, ["10.11", "10.40"]);
    assert_eq!(frames.len(), 37);
}

#[test]
fn server_to_client_decodes_and_reencodes() {
    let frames = decode_all(&read("server-to-client.bin"));
    let differed = reencode_all(&frames);
    eprintln!("server: {:?}", kinds(&frames));
    // start: server-properties and capabilities table order.
    assert_eq!(differed, ["10.10"]);
    assert_eq!(frames.len(), 39);
}

/// Every content header's properties parse, and re-encode to the same length
/// and meaning (the headers table is the only thing that may be reordered).
fn check_properties(frames: &[(Frame, Vec<u8>)]) -> Vec<warren_codec::BasicProperties> {
    let mut all = Vec::new();
    for (frame, _) in frames {
        let Frame::Header { properties, .. } = frame else {
            continue;
        };
        let props = parse_properties(properties).unwrap();
        let mut again = BytesMut::new();
        warren_codec::encode_properties(&props, &mut again);
        assert_eq!(again.len(), properties.len());
        assert_eq!(parse_properties(&again).unwrap(), props);
        all.push(props);
    }
    all
}

#[test]
fn content_properties_parse_and_reencode() {
    use warren_codec::{AMQPValue, ShortString};
    let client = decode_all(&read("client-to-server.bin")[8..]);
    let published = check_properties(&client);
    assert_eq!(published.len(), 4);
    // The trace README says "all 14 properties", but the recorded flags are
    // 0xBFE8: pika left out content-encoding, user-id and cluster-id.
    let first = &published[0];
    assert_eq!(first.bitmask(), 0xBFE8);
    assert_eq!(first.priority(), &Some(1));
    assert_eq!(
        first.expiration().as_ref().map(ShortString::as_str),
        Some("60000")
    );
    let headers = first.headers().as_ref().unwrap();
    let get = |k: &str| headers.inner().get(&ShortString::from(k)).cloned();
    assert_eq!(get("big"), Some(AMQPValue::LongLongInt(1 << 40)));
    assert!(matches!(get("t"), Some(AMQPValue::FieldTable(_))));
    assert!(matches!(get("l"), Some(AMQPValue::FieldArray(_))));

    let server = decode_all(&read("server-to-client.bin"));
    let delivered = check_properties(&server);
    assert_eq!(delivered.len(), 5);
}

/// The real conversation, fed one byte at a time, decodes to the same frames.
#[test]
fn trace_fed_byte_by_byte_gives_the_same_frames() {
    for (name, skip) in [("client-to-server.bin", 8), ("server-to-client.bin", 0)] {
        let bytes = read(name);
        let expected: Vec<Frame> = decode_all(&bytes[skip..])
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in &bytes[skip..] {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = decode_frame(&mut buf, FRAME_MAX).unwrap() {
                frames.push(f);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(frames, expected, "{name}");
    }
}
