//! Direct reply-to (`amq.rabbitmq.reply-to`): RPC replies that skip queues.
//!
//! A client consumes from the pseudo-queue `amq.rabbitmq.reply-to` (no-ack)
//! and publishes requests with `reply_to = amq.rabbitmq.reply-to`; the broker
//! rewrites that to `amq.rabbitmq.reply-to.<token>`, where the token names the
//! consuming channel. A reply published to the default exchange with that
//! routing key goes straight to the channel, or nowhere if it is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use warren_core::message::Message;

use super::events::{ConnEvent, OwnerLink};

/// The pseudo-queue name clients consume from and put in `reply_to`.
pub const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";
/// Prefix of the per-channel reply address.
pub const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Reply consumers by token.
#[derive(Default)]
pub struct ReplyTo {
    consumers: RwLock<BTreeMap<String, (OwnerLink, String)>>,
}

impl ReplyTo {
    /// Registers a channel's reply consumer; returns its reply address.
    pub fn register(&self, link: OwnerLink, consumer_tag: String) -> String {
        let token = crate::connection::names::reply_token();
        self.consumers
            .write()
            .insert(token.clone(), (link, consumer_tag));
        format!("{PREFIX}{token}")
    }

    pub fn unregister(&self, address: &str) {
        if let Some(token) = address.strip_prefix(PREFIX) {
            self.consumers.write().remove(token);
        }
    }

    /// Whether a reply address still has its consumer.
    pub fn exists(&self, address: &str) -> bool {
        address
            .strip_prefix(PREFIX)
            .is_some_and(|t| self.consumers.read().contains_key(t))
    }

    /// Delivers a reply; false when nobody is there to take it.
    pub fn deliver(&self, address: &str, msg: Arc<Message>) -> bool {
        let Some(token) = address.strip_prefix(PREFIX) else {
            return false;
        };
        let consumers = self.consumers.read();
        let Some((link, tag)) = consumers.get(token) else {
            return false;
        };
        link.tx
            .send(ConnEvent::Reply {
                channel: link.channel,
                consumer_tag: tag.clone(),
                msg,
            })
            .is_ok()
    }
}
