//! Reading frames: the protocol header check, the 7-byte frame header check
//! (size limit enforced before a single payload byte is buffered), and the
//! split-then-parse step that turns a complete frame into a `Frame`.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{CodecError, CodecErrorKind};
use crate::methods::decode_method;
use crate::spec::AMQPClass;
use crate::{
    FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_OVERHEAD, PROTOCOL_HEADER,
};

/// One decoded frame. Header properties and body payloads are slices of the
/// read buffer (no copy); only method fields are parsed into owned values.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method {
        channel: u16,
        method: Box<AMQPClass>,
    },
    /// `properties` are the raw property-flags + property-list bytes exactly
    /// as received; parse them with `parse_properties` when needed.
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: Bytes,
    },
    Body {
        channel: u16,
        payload: Bytes,
    },
    /// Heartbeats must use channel 0; the channel is reported so the frontend
    /// can reject others (RabbitMQ answers 505 UNEXPECTED_FRAME).
    Heartbeat {
        channel: u16,
    },
}

impl Frame {
    #[must_use]
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => *channel,
        }
    }
}

/// Result of looking at the first bytes a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeaderCheck {
    /// Fewer than 8 bytes, all matching so far.
    NeedMore,
    /// A 0-9-1 header: the caller consumes 8 bytes and sends connection.start.
    Ok,
    /// Anything else: the server must reply `PROTOCOL_HEADER` and close.
    Unsupported,
}

/// The 0-9 header, which RabbitMQ accepts and serves as 0-9-1
/// (`rabbit_reader:version_negotiation`); old clients still send it.
const PROTOCOL_HEADER_0_9: [u8; 8] = *b"AMQP\x01\x01\x00\x09";

/// Checks the protocol header at the start of `buf`. Rejects as soon as a
/// byte differs, so an HTTP or TLS client is turned away without waiting.
#[must_use]
pub fn check_protocol_header(buf: &[u8]) -> ProtocolHeaderCheck {
    let n = buf.len().min(PROTOCOL_HEADER.len());
    let head = &buf[..n];
    let matches = |h: &[u8; 8]| head == &h[..n];
    if !matches(&PROTOCOL_HEADER) && !matches(&PROTOCOL_HEADER_0_9) {
        ProtocolHeaderCheck::Unsupported
    } else if n < PROTOCOL_HEADER.len() {
        ProtocolHeaderCheck::NeedMore
    } else {
        ProtocolHeaderCheck::Ok
    }
}

/// Looks at the start of `buf` without consuming it. `Ok(None)`: need more
/// bytes. `Ok(Some(len))`: a complete frame of `len` bytes (header, payload,
/// end octet) is at the front. Errors are raised as early as the bytes allow:
/// the type from the first byte, the size from the first 7.
///
/// The size limit follows RabbitMQ: a frame is too large when its *payload*
/// exceeds `frame_max` (RabbitMQ tolerates the 8 framing bytes on top because
/// many clients get them wrong). `frame_max == 0` means no limit, as in
/// connection.tune; the frontend should always pass its own cap.
pub fn check_frame(buf: &[u8], frame_max: u32) -> Result<Option<usize>, CodecError> {
    let Some(&frame_type) = buf.first() else {
        return Ok(None);
    };
    if !matches!(
        frame_type,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(CodecError::new(
            CodecErrorKind::UnknownFrameType(frame_type),
            0,
        ));
    }
    let Some(header) = buf.get(..FRAME_HEADER_SIZE) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    check_payload_size(frame_type, size, frame_max)?;
    // Only overflows on 16/32-bit targets with frame_max == 0.
    let len = (size as usize).checked_add(FRAME_OVERHEAD).ok_or_else(|| {
        CodecError::new(
            CodecErrorKind::FrameTooLarge {
                size: u64::from(size) + FRAME_OVERHEAD as u64,
                max: frame_max,
            },
            3,
        )
    })?;
    let Some(&end) = buf.get(len - 1) else {
        return Ok(None);
    };
    if end != FRAME_END {
        return Err(CodecError::new(
            CodecErrorKind::BadFrameEnd { found: end },
            len - 1,
        ));
    }
    Ok(Some(len))
}

/// Size rules that need only the frame header: the limit, and the minimum
/// payload each frame type needs to be well formed.
fn check_payload_size(frame_type: u8, size: u32, frame_max: u32) -> Result<(), CodecError> {
    if frame_max != 0 && size > frame_max {
        return Err(CodecError::new(
            CodecErrorKind::FrameTooLarge {
                size: u64::from(size) + FRAME_OVERHEAD as u64,
                max: frame_max,
            },
            3,
        ));
    }
    let well_formed = match frame_type {
        // class-id + method-id
        FRAME_METHOD => size >= 4,
        // class-id + weight + body-size; RabbitMQ accepts an empty property
        // list here, so do we.
        FRAME_HEADER => size >= 12,
        FRAME_HEARTBEAT => size == 0,
        _ => true,
    };
    if well_formed {
        Ok(())
    } else {
        Err(CodecError::new(
            CodecErrorKind::BadPayloadSize { frame_type, size },
            3,
        ))
    }
}

/// Splits the next complete frame off `buf` and parses it. `Ok(None)` leaves
/// `buf` untouched until more bytes arrive; on error `buf` is also left as it
/// was (the connection is closing anyway, and the bytes help diagnostics).
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, CodecError> {
    let Some(len) = check_frame(buf, frame_max)? else {
        return Ok(None);
    };
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let payload_end = len - 1;
    let frame = match buf[0] {
        FRAME_METHOD => {
            let method = decode_method(&buf[FRAME_HEADER_SIZE..payload_end], FRAME_HEADER_SIZE)?;
            buf.advance(len);
            Frame::Method {
                channel,
                method: Box::new(method),
            }
        }
        FRAME_HEADER => decode_header(buf, channel, len)?,
        FRAME_BODY => {
            let frame = buf.split_to(len).freeze();
            Frame::Body {
                channel,
                payload: frame.slice(FRAME_HEADER_SIZE..payload_end),
            }
        }
        _ => {
            // check_frame admits only the four types, so this is a heartbeat.
            buf.advance(len);
            Frame::Heartbeat { channel }
        }
    };
    Ok(Some(frame))
}

/// Content header: class-id, weight (must be 0), body size, raw properties.
fn decode_header(buf: &mut BytesMut, channel: u16, len: usize) -> Result<Frame, CodecError> {
    let p = &buf[FRAME_HEADER_SIZE..];
    let class_id = u16::from_be_bytes([p[0], p[1]]);
    let weight = u16::from_be_bytes([p[2], p[3]]);
    if weight != 0 {
        return Err(CodecError::new(
            CodecErrorKind::NonZeroWeight { found: weight },
            FRAME_HEADER_SIZE + 2,
        ));
    }
    let body_size = u64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
    let frame = buf.split_to(len).freeze();
    Ok(Frame::Header {
        channel,
        class_id,
        body_size,
        properties: frame.slice(FRAME_HEADER_SIZE + 12..len - 1),
    })
}
