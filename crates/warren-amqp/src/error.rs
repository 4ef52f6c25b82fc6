//! Errors of the frontend, tiered as AMQP tiers them: a channel error closes
//! the channel (soft), a connection error closes the connection (hard).

/// AMQP reply codes used by the frontend.
pub mod code {
    pub const CONTENT_TOO_LARGE: u16 = 311;
    pub const NO_ROUTE: u16 = 312;
    pub const NO_CONSUMERS: u16 = 313;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const INVALID_PATH: u16 = 402;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;

    /// The symbolic name RabbitMQ prefixes reply texts with.
    pub fn name(code: u16) -> &'static str {
        match code {
            311 => "CONTENT_TOO_LARGE",
            312 => "NO_ROUTE",
            313 => "NO_CONSUMERS",
            320 => "CONNECTION_FORCED",
            402 => "INVALID_PATH",
            403 => "ACCESS_REFUSED",
            404 => "NOT_FOUND",
            405 => "RESOURCE_LOCKED",
            406 => "PRECONDITION_FAILED",
            501 => "FRAME_ERROR",
            502 => "SYNTAX_ERROR",
            503 => "COMMAND_INVALID",
            504 => "CHANNEL_ERROR",
            505 => "UNEXPECTED_FRAME",
            506 => "RESOURCE_ERROR",
            530 => "NOT_ALLOWED",
            540 => "NOT_IMPLEMENTED",
            _ => "INTERNAL_ERROR",
        }
    }

    /// Codes that close the connection rather than the channel.
    pub fn is_hard(code: u16) -> bool {
        matches!(code, 320 | 402 | 501..=506 | 530 | 540 | 541)
    }
}

/// An error to report to the client: a code, a readable text, and the method
/// that caused it. Whether it closes the channel or the connection follows
/// from the code ([`code::is_hard`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct AmqpError {
    pub code: u16,
    /// Full reply text, e.g. "NOT_FOUND - no queue 'q' in vhost '/'".
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    /// Builds an error whose text gets RabbitMQ's "NAME - " prefix.
    pub fn new(code: u16, detail: impl AsRef<str>) -> Self {
        AmqpError {
            code,
            text: format!("{} - {}", code::name(code), detail.as_ref()),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Builds an error from a text that already carries its prefix.
    pub fn with_text(code: u16, text: String) -> Self {
        let text = if text.starts_with(code::name(code)) {
            text
        } else {
            format!("{} - {}", code::name(code), text)
        };
        AmqpError {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    /// Attaches the failing method, unless one is already set.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn is_hard(&self) -> bool {
        code::is_hard(self.code)
    }
}

impl From<warren_core::meta::MetaError> for AmqpError {
    fn from(e: warren_core::meta::MetaError) -> Self {
        AmqpError::with_text(e.code, e.text)
    }
}

impl From<warren_core::queue::QueueError> for AmqpError {
    fn from(e: warren_core::queue::QueueError) -> Self {
        AmqpError::with_text(e.reply_code(), e.to_string())
    }
}
