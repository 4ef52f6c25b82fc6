//! Small byte-level writers shared by the encoders. Everything here appends to
//! a caller-owned `BytesMut` and never allocates beyond growing it.

use bytes::{BufMut, BytesMut};

use crate::{FRAME_END, FRAME_OVERHEAD};

/// Longest short string on the wire.
pub(crate) const SHORT_STR_MAX: usize = 255;

/// The bytes of `s` that fit a short string: all of it, or the longest prefix
/// of at most 255 bytes that ends on a UTF-8 character boundary. Truncating
/// rather than failing keeps the encoders infallible; cutting inside a
/// character would give the client invalid UTF-8.
pub(crate) fn short_str_bytes(s: &str) -> &[u8] {
    if s.len() <= SHORT_STR_MAX {
        return s.as_bytes();
    }
    let mut end = SHORT_STR_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// Wire size of a short string (length octet + bytes).
pub(crate) fn short_str_len(s: &str) -> usize {
    1 + short_str_bytes(s).len()
}

pub(crate) fn put_short_str(out: &mut BytesMut, s: &str) {
    let bytes = short_str_bytes(s);
    // `short_str_bytes` guarantees at most 255 bytes, so this never truncates.
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

/// Writes the 7-byte frame header.
pub(crate) fn put_frame_header(out: &mut BytesMut, frame_type: u8, channel: u16, size: u32) {
    out.put_u8(frame_type);
    out.put_u16(channel);
    out.put_u32(size);
}

/// Largest body payload per frame for a negotiated `frame_max`. 0 means "no
/// limit" in AMQP, bounded here by the 32-bit size field; a nonsensical
/// frame_max below the 8 bytes of framing still makes progress (1 byte per
/// frame) instead of looping forever.
pub(crate) fn max_body_payload(frame_max: u32) -> usize {
    if frame_max == 0 {
        return u32::MAX as usize;
    }
    (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
}

/// Number of body frames `encode_body` writes for `len` bytes.
pub(crate) fn body_frame_count(len: usize, frame_max: u32) -> usize {
    len.div_ceil(max_body_payload(frame_max))
}

/// Appends `body` as body frames of at most `frame_max` bytes each.
pub(crate) fn put_body_frames(out: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    for chunk in body.chunks(max_body_payload(frame_max)) {
        // chunk.len() <= u32::MAX by construction of max_body_payload.
        put_frame_header(out, crate::FRAME_BODY, channel, chunk.len() as u32);
        out.put_slice(chunk);
        out.put_u8(FRAME_END);
    }
}

/// Appends a content header frame around already-encoded properties.
pub(crate) fn put_header_frame(
    out: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    raw_properties: &[u8],
) {
    // class-id (2) + weight (2) + body-size (8) + properties.
    let size = 12 + raw_properties.len();
    put_frame_header(out, crate::FRAME_HEADER, channel, saturate_u32(size));
    out.put_u16(class_id);
    out.put_u16(0);
    out.put_u64(body_size);
    out.put_slice(raw_properties);
    out.put_u8(FRAME_END);
}

/// Frame payloads above 4 GiB cannot be expressed; callers never build them
/// (properties and methods are far smaller), so saturating is only a guard.
pub(crate) fn saturate_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
