//! The frames perf handles per message, read and written in place.
//!
//! `warren_codec::decode_frame` boxes every method it parses (and basic.deliver
//! carries three strings), which would be an allocation per delivery and per
//! confirm. So complete frames are found with the codec's `check_frame`, the five
//! hot ones (basic.deliver/ack/nack/return, content header and body) are read here
//! field by field, and only the rare rest goes through `decode_frame`. Outgoing
//! publishes and acks are encoded once by the codec into templates and patched.

use crate::perf::stats::stamp;
use anyhow::{Context as _, bail};
use bytes::BytesMut;
use warren_codec::spec::basic;
use warren_codec::{
    AMQPClass, BasicProperties, FRAME_BODY, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT,
    FRAME_METHOD, ShortString, encode_body, encode_header, encode_method, encode_properties,
};

/// Channel perf opens on every connection.
pub const CHANNEL: u16 = 1;

const CLASS_BASIC: u16 = 60;
const BASIC_RETURN: u16 = 50;
const BASIC_DELIVER: u16 = 60;
const BASIC_ACK: u16 = 80;
const BASIC_NACK: u16 = 120;

/// One frame taken off the read buffer, as far as perf needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Deliver {
        tag: u64,
    },
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
    },
    Return,
    Header {
        body_size: u64,
    },
    /// A body frame: its size and up to its first 8 bytes (where the stamp is).
    Body {
        len: usize,
        head: [u8; 8],
    },
    Heartbeat,
    /// Any other method, parsed by the codec.
    Method {
        channel: u16,
        method: Box<AMQPClass>,
    },
}

/// Takes the next complete frame off `buf`; `None` when more bytes are needed.
pub fn next_frame(buf: &mut BytesMut, frame_max: u32) -> anyhow::Result<Option<Incoming>> {
    let Some(len) = warren_codec::check_frame(buf, frame_max)? else {
        return Ok(None);
    };
    let payload = &buf[FRAME_HEADER_SIZE..len - 1];
    let hot = match buf[0] {
        FRAME_METHOD => hot_method(payload)?,
        FRAME_HEADER => Some(Incoming::Header {
            // check_frame guarantees the 12 fixed bytes of a header payload.
            body_size: read_u64(payload, 4)?,
        }),
        FRAME_BODY => {
            let mut head = [0u8; 8];
            let n = payload.len().min(8);
            head[..n].copy_from_slice(&payload[..n]);
            Some(Incoming::Body {
                len: payload.len(),
                head,
            })
        }
        FRAME_HEARTBEAT => Some(Incoming::Heartbeat),
        other => bail!("unexpected frame type {other}"),
    };
    if let Some(hot) = hot {
        bytes::Buf::advance(buf, len);
        return Ok(Some(hot));
    }
    match warren_codec::decode_frame(buf, frame_max)? {
        Some(warren_codec::Frame::Method { channel, method }) => {
            Ok(Some(Incoming::Method { channel, method }))
        }
        other => bail!("codec disagrees on a method frame: {other:?}"),
    }
}

/// The per-message methods, read without building amq-protocol values.
fn hot_method(p: &[u8]) -> anyhow::Result<Option<Incoming>> {
    let class = u16::from_be_bytes([p[0], p[1]]);
    let method = u16::from_be_bytes([p[2], p[3]]);
    if class != CLASS_BASIC {
        return Ok(None);
    }
    Ok(Some(match method {
        BASIC_DELIVER => {
            // consumer-tag (short string), then the delivery tag.
            let tag_len = usize::from(*p.get(4).context("basic.deliver truncated")?);
            Incoming::Deliver {
                tag: read_u64(p, 5 + tag_len)?,
            }
        }
        BASIC_ACK => Incoming::Ack {
            tag: read_u64(p, 4)?,
            multiple: read_bit(p, 12)?,
        },
        BASIC_NACK => Incoming::Nack {
            tag: read_u64(p, 4)?,
            multiple: read_bit(p, 12)?,
        },
        BASIC_RETURN => Incoming::Return,
        _ => return Ok(None),
    }))
}

fn read_u64(p: &[u8], at: usize) -> anyhow::Result<u64> {
    let bytes: [u8; 8] = p
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .context("frame truncated")?;
    Ok(u64::from_be_bytes(bytes))
}

fn read_bit(p: &[u8], at: usize) -> anyhow::Result<bool> {
    Ok(p.get(at).context("frame truncated")? & 1 == 1)
}

/// One publish (method, content header, body frames) encoded once; each message
/// is a copy with a fresh stamp.
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Offset of the body's first byte.
    stamp_at: usize,
}

/// What every publish of a producer looks like.
pub struct PublishShape<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub mandatory: bool,
    pub persistent: bool,
    pub size: usize,
}

impl PublishTemplate {
    /// Encodes the publish with the codec, split to the negotiated `frame_max`.
    pub fn new(shape: &PublishShape<'_>, frame_max: u32) -> anyhow::Result<Self> {
        let short = |s: &str| ShortString::try_new(s).map_err(|e| anyhow::anyhow!("{s:?}: {e}"));
        let publish = basic::Publish {
            exchange: short(shape.exchange)?,
            routing_key: short(shape.routing_key)?,
            mandatory: shape.mandatory,
            immediate: false,
        };
        let mut out = BytesMut::new();
        encode_method(
            CHANNEL,
            &AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
            &mut out,
        );
        let properties = if shape.persistent {
            BasicProperties::default().with_delivery_mode(2)
        } else {
            BasicProperties::default()
        };
        let mut raw = BytesMut::new();
        encode_properties(&properties, &mut raw);
        encode_header(CHANNEL, CLASS_BASIC, shape.size as u64, &raw, &mut out);
        let stamp_at = out.len() + FRAME_HEADER_SIZE;
        encode_body(CHANNEL, &vec![0u8; shape.size], frame_max, &mut out);
        Ok(Self {
            bytes: out.to_vec(),
            stamp_at,
        })
    }

    /// Bytes one message takes on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one message stamped with `micros` (the body's first 8 bytes).
    pub fn append(&self, out: &mut BytesMut, micros: u64) {
        let at = out.len() + self.stamp_at;
        out.extend_from_slice(&self.bytes);
        stamp(&mut out[at..], micros);
    }
}

/// basic.ack frames, encoded once by the codec; only the tag changes.
pub struct AckTemplate {
    single: Vec<u8>,
    multiple: Vec<u8>,
}

/// Frame header (7) + class and method ids (4): where the delivery tag starts.
const ACK_TAG_AT: usize = FRAME_HEADER_SIZE + 4;

impl AckTemplate {
    pub fn new() -> Self {
        let encode = |multiple| {
            let mut out = BytesMut::new();
            let ack = basic::Ack {
                delivery_tag: 0,
                multiple,
            };
            encode_method(
                CHANNEL,
                &AMQPClass::Basic(basic::AMQPMethod::Ack(ack)),
                &mut out,
            );
            out.to_vec()
        };
        Self {
            single: encode(false),
            multiple: encode(true),
        }
    }

    /// Appends basic.ack(`tag`, `multiple`).
    pub fn append(&self, out: &mut BytesMut, tag: u64, multiple: bool) {
        let at = out.len() + ACK_TAG_AT;
        out.extend_from_slice(if multiple {
            &self.multiple
        } else {
            &self.single
        });
        out[at..at + 8].copy_from_slice(&tag.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::stats::read_stamp;
    use warren_codec::Frame;

    fn decode_all(mut buf: BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = warren_codec::decode_frame(&mut buf, 0).unwrap() {
            frames.push(f);
        }
        assert!(buf.is_empty());
        frames
    }

    #[test]
    fn publish_template_is_what_the_codec_reads_back() {
        let shape = PublishShape {
            exchange: "ex",
            routing_key: "rk",
            mandatory: true,
            persistent: true,
            size: 10_000,
        };
        let t = PublishTemplate::new(&shape, 4096).unwrap();
        let mut out = BytesMut::new();
        t.append(&mut out, 42);
        t.append(&mut out, 43);
        assert_eq!(out.len(), 2 * t.len());
        let frames = decode_all(out);
        // method + header + 3 body frames (4088 bytes each at most), twice.
        assert_eq!(frames.len(), 10);
        let Frame::Method { channel: 1, method } = &frames[0] else {
            panic!("{:?}", frames[0])
        };
        let AMQPClass::Basic(basic::AMQPMethod::Publish(p)) = method.as_ref() else {
            panic!("{method:?}")
        };
        assert_eq!((p.exchange.as_str(), p.routing_key.as_str()), ("ex", "rk"));
        assert!(p.mandatory && !p.immediate);
        let Frame::Header {
            body_size,
            properties,
            ..
        } = &frames[1]
        else {
            panic!()
        };
        assert_eq!(*body_size, 10_000);
        let props = warren_codec::parse_properties(properties).unwrap();
        assert_eq!(props.delivery_mode(), &Some(2));
        let body = |i: usize| match &frames[i] {
            Frame::Body { payload, .. } => payload.clone(),
            f => panic!("{f:?}"),
        };
        assert_eq!(read_stamp(&body(2)), Some(42));
        assert_eq!(read_stamp(&body(7)), Some(43));
        assert_eq!(body(2).len() + body(3).len() + body(4).len(), 10_000);
    }

    #[test]
    fn hot_frames_match_the_codec() {
        let mut buf = BytesMut::new();
        AckTemplate::new().append(&mut buf, 7, true);
        AckTemplate::new().append(&mut buf, u64::MAX - 1, false);
        let nack = basic::Nack {
            delivery_tag: 9,
            multiple: true,
            requeue: true,
        };
        encode_method(
            1,
            &AMQPClass::Basic(basic::AMQPMethod::Nack(nack)),
            &mut buf,
        );
        warren_codec::encode_deliver(&mut buf, 1, 0, "ctag-1", 1234, true, "", "q", &[], b"");
        warren_codec::encode_deliver(&mut buf, 1, 0, "c", 5, false, "x", "q", &[], b"abc");
        warren_codec::encode_return(&mut buf, 1, 0, 312, "NO_ROUTE", "", "q", &[], b"0123456789");
        let qos_ok = AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}));
        encode_method(1, &qos_ok, &mut buf);
        warren_codec::encode_heartbeat(&mut buf);
        let mut got = Vec::new();
        while let Some(f) = next_frame(&mut buf, 0).unwrap() {
            got.push(f);
        }
        assert!(buf.is_empty());
        let mut head = [0u8; 8];
        head[..3].copy_from_slice(b"abc");
        let mut head10 = [0u8; 8];
        head10.copy_from_slice(b"01234567");
        assert_eq!(
            got,
            vec![
                Incoming::Ack {
                    tag: 7,
                    multiple: true
                },
                Incoming::Ack {
                    tag: u64::MAX - 1,
                    multiple: false
                },
                Incoming::Nack {
                    tag: 9,
                    multiple: true
                },
                Incoming::Deliver { tag: 1234 },
                Incoming::Header { body_size: 0 },
                Incoming::Deliver { tag: 5 },
                Incoming::Header { body_size: 3 },
                Incoming::Body { len: 3, head },
                Incoming::Return,
                Incoming::Header { body_size: 10 },
                Incoming::Body {
                    len: 10,
                    head: head10
                },
                Incoming::Method {
                    channel: 1,
                    method: Box::new(qos_ok)
                },
                Incoming::Heartbeat,
            ]
        );
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut full = BytesMut::new();
        AckTemplate::new().append(&mut full, 3, false);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(next_frame(&mut part, 0).unwrap(), None, "cut at {cut}");
            assert_eq!(part.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn truncated_deliver_is_an_error() {
        // A basic.deliver whose consumer tag claims more bytes than the frame has.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[1, 0, 1, 0, 0, 0, 6, 0, 60, 0, 60, 200, 0, 0xCE]);
        assert!(next_frame(&mut buf, 0).is_err());
    }
}
