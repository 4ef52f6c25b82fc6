//! warren-codec: the AMQP 0-9-1 wire format, and nothing else.
//!
//! Pure and buffer-first: no async, no sockets, no broker semantics, no other
//! warren crate. The frontend (`warren-amqp`) owns the socket and the read
//! buffer; this crate only looks at bytes and says what they are.
//!
//! ```text
//!  socket bytes ──► BytesMut ──► check_frame (7-byte header: type, size ≤ frame_max)
//!                                   │ Ok(Some(len))
//!                                   ▼
//!                               decode_frame ──► Frame::Method  (amq-protocol parses the fields)
//!                                                Frame::Header  (properties kept raw, zero-copy)
//!                                                Frame::Body    (payload is a Bytes slice, zero-copy)
//!                                                Frame::Heartbeat
//!
//!  broker replies ──► encode_method / encode_header / encode_body   (generic)
//!                     encode_deliver / encode_get_ok / encode_return (hand-written hot path)
//!                        └──► one caller-owned BytesMut, flushed in one socket write
//! ```
//!
//! Method and property types come from `amq-protocol` (generated from the
//! RabbitMQ spec) and are re-exported so the frontend needs no direct
//! dependency on it. amq-protocol does not enforce `frame_max` and copies
//! bodies byte by byte, which is why framing is done here and bodies and
//! header properties stay `Bytes` slices of the read buffer.
//!
//! Short strings longer than 255 bytes given to the hand-written encoders are
//! truncated at the last UTF-8 character boundary at or below 255 bytes (the
//! encoders return nothing, so they cannot fail; amq-protocol's own
//! `ShortString` cannot be built longer than 255 bytes).

mod content;
mod encode;
mod error;
mod frame;
mod methods;
mod properties;
mod wire;

pub use amq_protocol::protocol::{self as spec, AMQPClass, BasicProperties};
pub use amq_protocol::types::{
    AMQPType, AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

pub use content::{encode_deliver, encode_get_ok, encode_return};
pub use encode::{
    encode_body, encode_frame, encode_header, encode_heartbeat, encode_method,
    encode_protocol_header,
};
pub use error::{CodecError, CodecErrorKind};
pub use frame::{Frame, ProtocolHeaderCheck, check_frame, check_protocol_header, decode_frame};
pub use methods::is_known_method;
pub use properties::{encode_properties, parse_properties};

/// Last octet of every frame.
pub const FRAME_END: u8 = 0xCE;
/// Smallest frame_max a peer may negotiate. The 0-9-1 spec text and RabbitMQ
/// (`?FRAME_MIN_SIZE` in rabbit_framing.hrl) both say 4096; amq-protocol's
/// generated constant says 8192, which would reject valid clients.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// What a 0-9-1 client sends first, and what the server answers with before
/// closing when it does not like the client's header.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Frame type octets.
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;

/// Type (1) + channel (2) + payload size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
/// Bytes a frame adds around its payload: the 7-byte header and the end octet.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;

/// Reply codes this crate's errors map to (AMQP 0-9-1 constants).
pub mod reply_code {
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const NOT_IMPLEMENTED: u16 = 540;
}
