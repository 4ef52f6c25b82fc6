//! A published message as the broker keeps it.

use bytes::Bytes;

/// A message as published. It is shared (`Arc<Message>`) by every queue it
/// was routed to: a body routed to ten queues is one buffer, not ten.
///
/// `properties` holds the content header's property flags and property list
/// exactly as the publisher sent them, so delivery writes them back bit-exact
/// without re-encoding; the few fields the broker acts on are parsed once at
/// publish time into the fields below.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    /// Raw property flags + property list of the content header.
    pub properties: Bytes,
    pub body: Bytes,
    /// delivery_mode == 2.
    pub persistent: bool,
    /// The `priority` property (0 when absent).
    pub priority: u8,
    /// The `expiration` property parsed as milliseconds (per-message TTL).
    pub expiration_ms: Option<u64>,
}

impl Message {
    /// Bytes this message accounts for in queue length limits (body only, as RabbitMQ).
    pub fn size(&self) -> u64 {
        self.body.len() as u64
    }
}
