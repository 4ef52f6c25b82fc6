//! Generic encoders: any method, a content header around raw properties, body
//! frames split to frame_max, heartbeats. They append to a caller-owned
//! buffer so the connection can batch many frames into one socket write.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::gen_class;
use bytes::{BufMut, BytesMut};

use crate::frame::Frame;
use crate::spec::AMQPClass;
use crate::wire::{put_body_frames, put_frame_header, put_header_frame, saturate_u32};
use crate::{FRAME_END, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD, PROTOCOL_HEADER};

/// Appends one method frame. Methods are serialized by amq-protocol into a
/// scratch `Vec` first (its generator needs a seekable writer for field-table
/// lengths); the hot content paths use the hand-written encoders instead.
///
/// amq-protocol's generator cannot fail on a `Vec` for any value its types
/// can hold (`ShortString` is capped at 255 bytes on construction), so a
/// failure is a bug: it trips a debug assertion and appends nothing.
pub fn encode_method(channel: u16, method: &AMQPClass, out: &mut BytesMut) {
    let fields = match gen_class(method)(WriteContext::from(Vec::with_capacity(64))) {
        Ok(ctx) => ctx.into_inner().0,
        Err(e) => {
            debug_assert!(false, "amq-protocol failed to encode {method:?}: {e:?}");
            return;
        }
    };
    out.reserve(fields.len() + FRAME_OVERHEAD);
    put_frame_header(out, FRAME_METHOD, channel, saturate_u32(fields.len()));
    out.put_slice(&fields);
    out.put_u8(FRAME_END);
}

/// Appends a content header frame. `raw_properties` are property flags +
/// property list, as received in `Frame::Header` or made by
/// `encode_properties`. The weight is always 0.
pub fn encode_header(
    channel: u16,
    class_id: u16,
    body_size: u64,
    raw_properties: &[u8],
    out: &mut BytesMut,
) {
    out.reserve(FRAME_OVERHEAD + 12 + raw_properties.len());
    put_header_frame(out, channel, class_id, body_size, raw_properties);
}

/// Appends `body` as body frames of at most `frame_max` bytes each (framing
/// included). An empty body produces no frame. `frame_max == 0` means no
/// limit (one frame, up to 4 GiB).
pub fn encode_body(channel: u16, body: &[u8], frame_max: u32, out: &mut BytesMut) {
    let frames = crate::wire::body_frame_count(body.len(), frame_max);
    out.reserve(body.len() + frames * FRAME_OVERHEAD);
    put_body_frames(out, channel, body, frame_max);
}

/// Appends a heartbeat frame (always channel 0).
pub fn encode_heartbeat(out: &mut BytesMut) {
    out.reserve(FRAME_OVERHEAD);
    put_frame_header(out, FRAME_HEARTBEAT, 0, 0);
    out.put_u8(FRAME_END);
}

/// Appends the 0-9-1 protocol header (the server's answer to a client header
/// it does not support, before closing).
pub fn encode_protocol_header(out: &mut BytesMut) {
    out.put_slice(&PROTOCOL_HEADER);
}

/// Appends exactly one frame for `frame`, the inverse of `decode_frame`: a
/// body frame is written as it is (never split), a heartbeat keeps its
/// channel. Useful for relaying and for tests.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Method { channel, method } => encode_method(*channel, method, out),
        Frame::Header {
            channel,
            class_id,
            body_size,
            properties,
        } => encode_header(*channel, *class_id, *body_size, properties, out),
        Frame::Body { channel, payload } => {
            out.reserve(payload.len() + FRAME_OVERHEAD);
            put_frame_header(
                out,
                crate::FRAME_BODY,
                *channel,
                saturate_u32(payload.len()),
            );
            out.put_slice(payload);
            out.put_u8(FRAME_END);
        }
        Frame::Heartbeat { channel } => {
            out.reserve(FRAME_OVERHEAD);
            put_frame_header(out, FRAME_HEARTBEAT, *channel, 0);
            out.put_u8(FRAME_END);
        }
    }
}
