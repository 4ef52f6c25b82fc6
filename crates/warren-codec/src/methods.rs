//! Method frame payloads: class id, method id, fields. amq-protocol does the
//! field parsing; this module decides which ids exist (so an unknown method is
//! told apart from a malformed known one) and maps nom's outcomes to
//! `CodecError`s.

use amq_protocol::protocol::{AMQPClass, parse_class};

use crate::error::{CodecError, CodecErrorKind};

/// Method ids per class, as in the 0-9-1 spec with RabbitMQ's extensions
/// (exchange.bind/unbind, basic.nack, confirm, connection.blocked/unblocked,
/// update-secret). Exchange.unbind-ok really is 51.
const KNOWN_METHODS: &[(u16, &[u16])] = &[
    (
        10,
        &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
    ),
    (20, &[10, 11, 20, 21, 40, 41]),
    (30, &[10, 11]),
    (40, &[10, 11, 20, 21, 30, 31, 40, 51]),
    (50, &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51]),
    (
        60,
        &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
    ),
    (85, &[10, 11]),
    (90, &[10, 11, 20, 21, 30, 31]),
];

/// Whether `class_id.method_id` is a method of AMQP 0-9-1 as RabbitMQ speaks it.
#[must_use]
pub fn is_known_method(class_id: u16, method_id: u16) -> bool {
    KNOWN_METHODS
        .iter()
        .any(|(class, methods)| *class == class_id && methods.contains(&method_id))
}

/// Decodes a method frame payload. `offset` is where the payload starts in
/// the caller's buffer, so errors point at the right byte.
pub(crate) fn decode_method(payload: &[u8], offset: usize) -> Result<AMQPClass, CodecError> {
    let (class_id, method_id) = match payload {
        [c0, c1, m0, m1, ..] => (
            u16::from_be_bytes([*c0, *c1]),
            u16::from_be_bytes([*m0, *m1]),
        ),
        _ => {
            let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            return Err(CodecError::new(
                CodecErrorKind::BadPayloadSize {
                    frame_type: crate::FRAME_METHOD,
                    size,
                },
                offset,
            ));
        }
    };
    if !is_known_method(class_id, method_id) {
        return Err(CodecError::new(
            CodecErrorKind::UnknownMethod {
                class_id,
                method_id,
            },
            offset,
        )
        .with_method(class_id, method_id));
    }
    let syntax = |at: usize, detail: String| {
        CodecError::new(CodecErrorKind::Syntax, at)
            .with_detail(detail)
            .with_method(class_id, method_id)
    };
    match parse_class(payload) {
        Ok(([], method)) => Ok(method),
        Ok((rest, _)) => Err(syntax(
            offset + payload.len() - rest.len(),
            format!("{} trailing bytes after the last field", rest.len()),
        )),
        // The frame is complete, so running out of bytes means the sender
        // wrote too few: malformed, not "read more".
        Err(e) if e.is_incomplete() => Err(syntax(
            offset + payload.len(),
            "fields truncated by the end of the frame".to_owned(),
        )),
        Err(e) => Err(syntax(offset, e.to_string())),
    }
}
