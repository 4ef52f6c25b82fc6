//! Conversions between the domain types of warren-core and their protobuf
//! mirrors in warren-rpc (STYLE.md 4: wire types stop at the crate edge).
//!
//! Both sides are foreign to this crate, so the orphan rule forbids `From` /
//! `TryFrom` between them; [`IntoProto`] and [`FromProto`] play those roles.
//! Encoding never fails; decoding checks everything protobuf cannot express
//! (required fields, enum values, integer widths) and says which field was
//! wrong. One file per type.

mod binding;
mod exchange;
mod message;
mod meta_command;
mod meta_reply;
mod queue_command;
mod queue_config;
mod queue_def;
mod queue_effect;
mod queue_image;
mod queue_reply;
mod user;
mod value;

pub use queue_command::{QueueOp, QueuePayload};
pub(crate) use queue_image::state_image_to_pb;

/// Why a protobuf value does not decode into a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("format version {0} is not supported")]
    Version(u32),
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The domain value as its protobuf mirror (the `From` direction).
pub trait IntoProto<P> {
    fn into_proto(self) -> P;
}

/// The protobuf mirror back as the domain value (the `TryFrom` direction).
pub trait FromProto<P>: Sized {
    fn from_proto(p: P) -> Result<Self, DecodeError>;
}

/// A required message field.
pub(crate) fn required<T>(v: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::Missing(field))
}

/// A protobuf integer wider than the domain's (proto has no 8/16-bit ints).
pub(crate) fn narrow<T: TryFrom<U>, U: Copy + std::fmt::Display>(
    v: U,
    field: &'static str,
) -> Result<T, DecodeError> {
    T::try_from(v).map_err(|_| DecodeError::Invalid {
        field,
        reason: format!("{v} is out of range"),
    })
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
