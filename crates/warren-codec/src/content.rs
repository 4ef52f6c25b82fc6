//! Hand-written encoders for the three server-to-client content methods
//! (basic.deliver, basic.get-ok, basic.return). They run once per message
//! sent to a consumer, so they compute the exact size up front, reserve once,
//! and write method + content header + body frames with no heap allocation
//! of their own. Tests pin them byte-for-byte to the generic path.

use bytes::{BufMut, BytesMut};

use crate::wire::{
    body_frame_count, put_body_frames, put_frame_header, put_header_frame, put_short_str,
    short_str_len,
};
use crate::{FRAME_END, FRAME_METHOD, FRAME_OVERHEAD};

const CLASS_BASIC: u16 = 60;
const METHOD_RETURN: u16 = 50;
const METHOD_DELIVER: u16 = 60;
const METHOD_GET_OK: u16 = 71;
/// class-id + method-id at the start of every method payload.
const METHOD_IDS_SIZE: usize = 4;

/// Reserves room for a whole message (method frame with `method_payload`
/// bytes, header frame, body frames) and writes the method frame's header and
/// ids; the caller then writes the fields and calls `finish_content`.
fn begin_content(
    out: &mut BytesMut,
    channel: u16,
    frame_max: u32,
    method_id: u16,
    method_payload: usize,
    raw_properties: &[u8],
    body: &[u8],
) {
    let header_frame = FRAME_OVERHEAD + 12 + raw_properties.len();
    let body_frames = body.len() + body_frame_count(body.len(), frame_max) * FRAME_OVERHEAD;
    out.reserve(FRAME_OVERHEAD + method_payload + header_frame + body_frames);
    // A method payload is at most 4 + 3 * 256 + 16 bytes here: fits u32.
    put_frame_header(out, FRAME_METHOD, channel, method_payload as u32);
    out.put_u16(CLASS_BASIC);
    out.put_u16(method_id);
}

/// Ends the method frame, then appends the content header and body frames.
fn finish_content(
    out: &mut BytesMut,
    channel: u16,
    frame_max: u32,
    raw_properties: &[u8],
    body: &[u8],
) {
    out.put_u8(FRAME_END);
    put_header_frame(out, channel, CLASS_BASIC, body.len() as u64, raw_properties);
    put_body_frames(out, channel, body, frame_max);
}

/// basic.deliver + content header (`raw_properties` as received) + body
/// frames split to `frame_max`. Short strings over 255 bytes are truncated
/// (see the crate docs).
#[allow(clippy::too_many_arguments)] // mirrors the method's fields; a struct would cost a copy per message
pub fn encode_deliver(
    out: &mut BytesMut,
    channel: u16,
    frame_max: u32,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    raw_properties: &[u8],
    body: &[u8],
) {
    let payload = METHOD_IDS_SIZE
        + short_str_len(consumer_tag)
        + 8
        + 1
        + short_str_len(exchange)
        + short_str_len(routing_key);
    begin_content(
        out,
        channel,
        frame_max,
        METHOD_DELIVER,
        payload,
        raw_properties,
        body,
    );
    put_short_str(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    finish_content(out, channel, frame_max, raw_properties, body);
}

/// basic.get-ok + content header + body frames.
#[allow(clippy::too_many_arguments)] // see encode_deliver
pub fn encode_get_ok(
    out: &mut BytesMut,
    channel: u16,
    frame_max: u32,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    message_count: u32,
    raw_properties: &[u8],
    body: &[u8],
) {
    let payload =
        METHOD_IDS_SIZE + 8 + 1 + short_str_len(exchange) + short_str_len(routing_key) + 4;
    begin_content(
        out,
        channel,
        frame_max,
        METHOD_GET_OK,
        payload,
        raw_properties,
        body,
    );
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    out.put_u32(message_count);
    finish_content(out, channel, frame_max, raw_properties, body);
}

/// basic.return + content header + body frames.
#[allow(clippy::too_many_arguments)] // see encode_deliver
pub fn encode_return(
    out: &mut BytesMut,
    channel: u16,
    frame_max: u32,
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
    raw_properties: &[u8],
    body: &[u8],
) {
    let payload = METHOD_IDS_SIZE
        + 2
        + short_str_len(reply_text)
        + short_str_len(exchange)
        + short_str_len(routing_key);
    begin_content(
        out,
        channel,
        frame_max,
        METHOD_RETURN,
        payload,
        raw_properties,
        body,
    );
    out.put_u16(reply_code);
    put_short_str(out, reply_text);
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    finish_content(out, channel, frame_max, raw_properties, body);
}
