//! The one error type of the codec, with the reply code the frontend closes
//! the connection with. Every codec error is a hard (connection) error: once
//! framing or decoding fails the byte stream can no longer be trusted.

use crate::reply_code;

/// What went wrong, with the values that matter for the close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecErrorKind {
    /// `size` is the whole frame (payload + 8 bytes of framing).
    #[error("frame of {size} bytes exceeds frame_max {max}")]
    FrameTooLarge { size: u64, max: u32 },
    #[error("frame end octet is {found:#04x}, expected 0xce")]
    BadFrameEnd { found: u8 },
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// Payload too short for its frame type (method < 4, header < 14 bytes) or
    /// a heartbeat that carries a payload.
    #[error("frame type {frame_type} cannot have a {size}-byte payload")]
    BadPayloadSize { frame_type: u8, size: u32 },
    #[error("unknown method {class_id}.{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// The method's fields do not decode (truncated, trailing bytes, bad
    /// field-table type letter, non-UTF-8 short string, ...).
    #[error("malformed method fields")]
    Syntax,
    /// The content header's property flags/list do not decode.
    #[error("malformed content properties")]
    BadProperties,
    #[error("content header weight is {found}, must be 0")]
    NonZeroWeight { found: u16 },
}

/// A codec failure: its kind, where in the input it was found, and what it
/// concerns. `offset` counts from the start of the slice or buffer handed to
/// the failing function (for `decode_frame`: the first byte of the frame).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset}{})", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
pub struct CodecError {
    pub kind: CodecErrorKind,
    pub offset: usize,
    pub detail: String,
    /// Class and method id of the method frame that failed, 0 when unknown.
    pub class_id: u16,
    pub method_id: u16,
}

impl CodecError {
    pub(crate) fn new(kind: CodecErrorKind, offset: usize) -> Self {
        Self {
            kind,
            offset,
            detail: String::new(),
            class_id: 0,
            method_id: 0,
        }
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub(crate) fn with_method(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// The connection.close reply code, chosen as RabbitMQ 3.x does where it
    /// answers at all:
    /// - framing faults are 501 FRAME_ERROR (`rabbit_reader:frame_error`);
    /// - undecodable method fields are also 501: RabbitMQ's generated decoder
    ///   falls back to `rabbit_misc:frame_error(Method, Bin)` ("cannot decode"),
    ///   and clients see that code, so we match it rather than the spec's 502;
    /// - a non-zero header weight is 505 UNEXPECTED_FRAME (the command
    ///   assembler only accepts weight 0 and rejects anything else that way);
    /// - an unknown class/method makes RabbitMQ's reader crash and drop the
    ///   socket without a close; we answer 540 NOT_IMPLEMENTED instead so the
    ///   client gets a readable reason;
    /// - undecodable properties are 502 SYNTAX_ERROR (RabbitMQ decodes them
    ///   lazily and has no single answer).
    #[must_use]
    pub fn reply_code(&self) -> u16 {
        match self.kind {
            CodecErrorKind::FrameTooLarge { .. }
            | CodecErrorKind::BadFrameEnd { .. }
            | CodecErrorKind::UnknownFrameType(_)
            | CodecErrorKind::BadPayloadSize { .. }
            | CodecErrorKind::Syntax => reply_code::FRAME_ERROR,
            CodecErrorKind::BadProperties => reply_code::SYNTAX_ERROR,
            CodecErrorKind::NonZeroWeight { .. } => reply_code::UNEXPECTED_FRAME,
            CodecErrorKind::UnknownMethod { .. } => reply_code::NOT_IMPLEMENTED,
        }
    }

    /// Ids of the failing method when known (for connection.close's
    /// class-id/method-id fields), else `(0, 0)`.
    #[must_use]
    pub fn class_method(&self) -> (u16, u16) {
        (self.class_id, self.method_id)
    }
}
