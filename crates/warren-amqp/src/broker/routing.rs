//! Routing: from an exchange to the queues a publish goes to, and a
//! dead-lettered message back through its dead-letter exchange.

use std::sync::Arc;

use warren_core::message::Message;
use warren_core::queue::DeadLetterReason;
use warren_core::value::Table;

use super::Broker;
use super::deadletter::{self, DeadLetterTarget};
use super::queue::{QueueHandle, QueueRequest};
use crate::error::AmqpError;

impl Broker {
    /// Routes a publish: appends the target queues to `out`.
    pub fn route(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: Option<&Table>,
        names: &mut Vec<String>,
        out: &mut Vec<QueueHandle>,
    ) -> Result<(), AmqpError> {
        names.clear();
        self.meta
            .read()
            .route(vhost, exchange, routing_key, headers, names)?;
        let queues = self.queues.read();
        let mut key = (vhost.to_string(), String::new());
        for n in names.drain(..) {
            key.1 = n;
            if let Some(h) = queues.get(&key) {
                out.push(h.clone());
            }
        }
        Ok(())
    }

    /// Republishes a message a queue discarded to its dead-letter exchange.
    pub fn dead_letter(
        &self,
        vhost: &str,
        queue: &str,
        target: &DeadLetterTarget,
        msg: &Message,
        reason: DeadLetterReason,
    ) {
        let dl = deadletter::dead_lettered(queue, target, msg, reason);
        let headers = warren_codec::parse_properties(&dl.properties)
            .ok()
            .and_then(|p| p.headers().as_ref().map(crate::convert::table_from_wire));
        let mut names = Vec::new();
        let mut targets = Vec::new();
        if self
            .route(
                vhost,
                &dl.exchange,
                &dl.routing_key,
                headers.as_ref(),
                &mut names,
                &mut targets,
            )
            .is_err()
        {
            return;
        }
        let dl = Arc::new(dl);
        for t in targets {
            // A message expiring back into its own queue would loop forever.
            if t.name() == queue && reason != DeadLetterReason::Rejected {
                continue;
            }
            t.send_now(QueueRequest::Publish {
                msg: dl.clone(),
                confirm: None,
            });
        }
    }
}
