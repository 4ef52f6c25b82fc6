//! The one error type of the metadata machine.
//!
//! RabbitMQ clients (and their users' logs and tests) match on reply texts,
//! so every error carries the AMQP reply code and the exact text RabbitMQ
//! sends, including its `NOT_FOUND - ` style prefix.

/// An AMQP reply code with its RabbitMQ reply text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct MetaError {
    /// AMQP reply code (404, 403, 405, 406, 503, 530, ...).
    pub code: u16,
    /// Full reply text as RabbitMQ sends it, e.g. `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub text: String,
}

pub(crate) const NOT_FOUND: u16 = 404;
pub(crate) const ACCESS_REFUSED: u16 = 403;
pub(crate) const RESOURCE_LOCKED: u16 = 405;
pub(crate) const PRECONDITION_FAILED: u16 = 406;
pub(crate) const COMMAND_INVALID: u16 = 503;
pub(crate) const NOT_ALLOWED: u16 = 530;

impl MetaError {
    fn with_prefix(code: u16, prefix: &str, text: impl AsRef<str>) -> Self {
        MetaError {
            code,
            text: format!("{prefix} - {}", text.as_ref()),
        }
    }

    pub fn not_found(text: impl AsRef<str>) -> Self {
        Self::with_prefix(NOT_FOUND, "NOT_FOUND", text)
    }

    pub fn access_refused(text: impl AsRef<str>) -> Self {
        Self::with_prefix(ACCESS_REFUSED, "ACCESS_REFUSED", text)
    }

    pub fn resource_locked(text: impl AsRef<str>) -> Self {
        Self::with_prefix(RESOURCE_LOCKED, "RESOURCE_LOCKED", text)
    }

    pub fn precondition_failed(text: impl AsRef<str>) -> Self {
        Self::with_prefix(PRECONDITION_FAILED, "PRECONDITION_FAILED", text)
    }

    pub fn command_invalid(text: impl AsRef<str>) -> Self {
        Self::with_prefix(COMMAND_INVALID, "COMMAND_INVALID", text)
    }

    pub fn not_allowed(text: impl AsRef<str>) -> Self {
        Self::with_prefix(NOT_ALLOWED, "NOT_ALLOWED", text)
    }

    /// Hard errors close the connection (connection.close); all others close
    /// only the channel. The list is the 0-9-1 spec's "connection" class.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self.code,
            320 | 402 | 501 | 502 | 503 | 504 | 505 | 506 | 530 | 540 | 541
        )
    }
}

/// RabbitMQ's `rabbit_misc:rs/1`: how a resource is named in reply texts.
pub(crate) fn rs(kind: &str, name: &str, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_rabbitmq_prefixes() {
        let e = MetaError::not_found(format!("no {}", rs("queue", "q", "/")));
        assert_eq!(e.code, 404);
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(e.to_string(), e.text);
        assert!(!e.is_connection_error());
        assert!(MetaError::command_invalid("x").is_connection_error());
        assert!(MetaError::not_allowed("x").is_connection_error());
        assert!(!MetaError::precondition_failed("x").is_connection_error());
    }
}
