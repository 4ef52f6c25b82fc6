//! Content properties (class basic): raw bytes <-> `BasicProperties`. The
//! frontend keeps properties raw and parses them only when the broker needs a
//! value (expiration, priority, headers for routing or dead-lettering).

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties as amq_parse_properties};
use bytes::BytesMut;

use crate::error::{CodecError, CodecErrorKind};
use crate::spec::BasicProperties;

/// Parses property flags + property list. An empty slice means "no
/// properties" (RabbitMQ accepts a content header with nothing after the body
/// size). Trailing bytes after the last announced property are an error.
pub fn parse_properties(raw: &[u8]) -> Result<BasicProperties, CodecError> {
    if raw.is_empty() {
        return Ok(BasicProperties::default());
    }
    match amq_parse_properties(raw) {
        Ok(([], props)) => Ok(props),
        Ok((rest, _)) => Err(CodecError::new(
            CodecErrorKind::BadProperties,
            raw.len() - rest.len(),
        )
        .with_detail(format!("{} trailing bytes", rest.len()))),
        Err(e) if e.is_incomplete() => {
            Err(CodecError::new(CodecErrorKind::BadProperties, raw.len())
                .with_detail("property list truncated"))
        }
        Err(e) => Err(CodecError::new(CodecErrorKind::BadProperties, 0).with_detail(e.to_string())),
    }
}

/// Appends the wire form of `props` (flags + list), the inverse of
/// `parse_properties`. Like `encode_method`, amq-protocol cannot fail here
/// for values its types can hold; if it ever did, nothing is appended and a
/// debug assertion fires.
pub fn encode_properties(props: &BasicProperties, out: &mut BytesMut) {
    match gen_properties(props)(WriteContext::from(Vec::with_capacity(32))) {
        Ok(ctx) => out.extend_from_slice(&ctx.into_inner().0),
        Err(e) => debug_assert!(false, "amq-protocol failed to encode {props:?}: {e:?}"),
    }
}
