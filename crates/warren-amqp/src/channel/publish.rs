//! basic.publish: assembling the content frames, then routing the message to
//! its queues, with mandatory returns and publisher confirms.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_codec::spec::basic;
use warren_core::message::Message;
use warren_core::meta::{Access, ResourceKind};
use warren_core::value::Table;

use super::{Channel, Ctx};
use crate::broker::events::ConfirmTo;
use crate::broker::queue::{QueueHandle, QueueRequest};
use crate::broker::reply_to;
use crate::convert::table_from_wire;
use crate::error::{AmqpError, code};

/// Don't trust a header's body size for preallocation beyond this.
const MAX_PREALLOC: usize = 1 << 20;

/// A basic.publish whose content frames are still arriving.
pub struct PendingPublish {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    /// Declared body size and raw properties, once the content header arrived.
    pub header: Option<(u64, Bytes)>,
    body: Body,
}

/// Body frames: one frame's slice is kept as is (no copy); more are joined.
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl PendingPublish {
    fn received(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::One(b) => b.len() as u64,
            Body::Many(b) => b.len() as u64,
        }
    }

    /// True once the header and every declared body byte have arrived.
    pub fn complete(&self) -> bool {
        matches!(self.header, Some((size, _)) if self.received() == size)
    }

    /// Adds a body frame; more bytes than the header declared is a frame error.
    pub fn push_body(&mut self, payload: Bytes) -> Result<(), AmqpError> {
        let Some((size, _)) = self.header else {
            return Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
            ));
        };
        let total = self.received() + payload.len() as u64;
        if total > size {
            return Err(AmqpError::new(
                code::FRAME_ERROR,
                format!("content body of {total} bytes exceeds the declared {size} bytes"),
            ));
        }
        self.body = match std::mem::replace(&mut self.body, Body::Empty) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let mut b = BytesMut::with_capacity((size as usize).min(MAX_PREALLOC));
                b.extend_from_slice(&first);
                b.extend_from_slice(&payload);
                Body::Many(b)
            }
            Body::Many(mut b) => {
                b.extend_from_slice(&payload);
                Body::Many(b)
            }
        };
        Ok(())
    }

    fn take_body(&mut self) -> Bytes {
        match std::mem::replace(&mut self.body, Body::Empty) {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// Per-channel memo of the last exchange checked, and reusable buffers.
#[derive(Default)]
pub struct Cache {
    checked_exchange: Option<String>,
    /// Routing results for header-less publishes, valid while the broker's
    /// topology generation is unchanged: steady-state publishing takes no
    /// broker lock at all.
    routes: Vec<CachedRoute>,
    routes_gen: u64,
    names: Vec<String>,
    targets: Vec<QueueHandle>,
}

impl Channel {
    pub(super) fn start_publish(
        &mut self,
        _ctx: &mut Ctx<'_>,
        p: basic::Publish,
    ) -> Result<(), AmqpError> {
        if p.immediate {
            return Err(AmqpError::new(code::NOT_IMPLEMENTED, "immediate=true"));
        }
        self.publish = Some(PendingPublish {
            exchange: p.exchange.as_str().to_string(),
            routing_key: p.routing_key.as_str().to_string(),
            mandatory: p.mandatory,
            header: None,
            body: Body::Empty,
        });
        Ok(())
    }

    /// The content header of the pending publish.
    pub fn on_header(
        &mut self,
        ctx: &Ctx<'_>,
        class_id: u16,
        size: u64,
        props: Bytes,
    ) -> Result<(), AmqpError> {
        let Some(p) = self.publish.as_mut() else {
            return Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead",
            ));
        };
        if p.header.is_some() {
            return Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected content body, got content header instead",
            ));
        }
        if class_id != 60 {
            return Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                format!(
                    "expected content header for class 60, got one for class {class_id} instead"
                ),
            ));
        }
        let max = ctx.broker.config().max_message_size;
        if size > max {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("message size {size} is larger than configured max size {max}"),
            ));
        }
        p.header = Some((size, props));
        Ok(())
    }

    /// A complete message: route it (or hold it for tx.commit).
    pub async fn finish_publish(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpError> {
        let Some(mut p) = self.publish.take() else {
            return Ok(());
        };
        let (_, properties) = p.header.take().unwrap_or_default();
        let body = p.take_body();
        self.check_exchange(ctx, &p.exchange)?;
        let reply_address = self.reply.as_ref().map(|(_, a)| a.as_str());
        let (msg, headers) = build_message(
            ctx.user,
            reply_address,
            p.exchange,
            p.routing_key,
            properties,
            body,
        )?;
        let msg = Arc::new(msg);
        if let Some(tx) = self.tx.as_mut() {
            tx.publishes.push((msg, headers, p.mandatory));
            return Ok(());
        }
        self.route(ctx, msg, headers.as_ref(), p.mandatory).await
    }

    /// Exchange exists, is not internal, and the user may write to it.
    fn check_exchange(&mut self, ctx: &Ctx<'_>, exchange: &str) -> Result<(), AmqpError> {
        if self.publish_cache.checked_exchange.as_deref() == Some(exchange) {
            return Ok(());
        }
        let def = ctx.broker.exchange(ctx.vhost, exchange).ok_or_else(|| {
            AmqpError::new(
                code::NOT_FOUND,
                format!("no exchange '{exchange}' in vhost '{}'", ctx.vhost),
            )
        })?;
        if def.internal {
            return Err(AmqpError::new(
                code::ACCESS_REFUSED,
                format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                    ctx.vhost
                ),
            ));
        }
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Write,
            ResourceKind::Exchange,
            exchange,
        )?;
        self.publish_cache.checked_exchange = Some(exchange.to_string());
        Ok(())
    }

    /// Routes and enqueues one message; returns it if mandatory and unroutable;
    /// registers its confirm.
    pub(super) async fn route(
        &mut self,
        ctx: &mut Ctx<'_>,
        msg: Arc<Message>,
        headers: Option<&Table>,
        mandatory: bool,
    ) -> Result<(), AmqpError> {
        if msg.exchange.is_empty() && msg.routing_key.starts_with(reply_to::PREFIX) {
            return self.route_reply(ctx, msg, mandatory);
        }
        let mut targets = std::mem::take(&mut self.publish_cache.targets);
        targets.clear();
        if let Err(e) = self.resolve(ctx, &msg, headers, &mut targets) {
            self.publish_cache.targets = targets;
            return Err(e);
        }
        if targets.is_empty() && mandatory {
            warren_codec::encode_return(
                ctx.out,
                self.id,
                ctx.frame_max,
                code::NO_ROUTE,
                "NO_ROUTE",
                &msg.exchange,
                &msg.routing_key,
                &msg.properties,
                &msg.body,
            );
        }
        let seq = self.confirms.as_mut().map(|c| c.register(targets.len()));
        for t in targets.drain(..) {
            let confirm = seq.map(|seq| ConfirmTo {
                tx: ctx.events.clone(),
                channel: self.id,
                seq,
            });
            t.send(QueueRequest::Publish {
                msg: msg.clone(),
                confirm,
            })
            .await;
        }
        self.publish_cache.targets = targets;
        if let Some(c) = self.confirms.as_mut() {
            c.flush(self.id, ctx.out);
        }
        Ok(())
    }
}

/// One remembered routing result.
struct CachedRoute {
    exchange: String,
    routing_key: String,
    targets: Vec<QueueHandle>,
}

/// Routes remembered per channel; beyond this the oldest is forgotten.
const ROUTE_CACHE: usize = 32;

impl Channel {
    /// The queues a publish goes to, from the cache when it is still valid.
    /// A message with headers is always routed afresh (headers exchanges
    /// look at them).
    fn resolve(
        &mut self,
        ctx: &Ctx<'_>,
        msg: &Message,
        headers: Option<&Table>,
        out: &mut Vec<QueueHandle>,
    ) -> Result<(), AmqpError> {
        let cache = &mut self.publish_cache;
        let generation = ctx.broker.topology_generation();
        if cache.routes_gen != generation {
            cache.routes.clear();
            cache.routes_gen = generation;
        }
        if headers.is_none()
            && let Some(hit) = cache
                .routes
                .iter()
                .find(|r| r.exchange == msg.exchange && r.routing_key == msg.routing_key)
        {
            out.extend(hit.targets.iter().cloned());
            return Ok(());
        }
        ctx.broker.route(
            ctx.vhost,
            &msg.exchange,
            &msg.routing_key,
            headers,
            &mut cache.names,
            out,
        )?;
        // Only a result computed under an unchanged generation may be kept.
        if headers.is_none() && ctx.broker.topology_generation() == generation {
            if cache.routes.len() >= ROUTE_CACHE {
                cache.routes.remove(0);
            }
            cache.routes.push(CachedRoute {
                exchange: msg.exchange.clone(),
                routing_key: msg.routing_key.clone(),
                targets: out.clone(),
            });
        }
        Ok(())
    }

    /// A reply to a direct reply-to address goes straight to its channel.
    fn route_reply(
        &mut self,
        ctx: &mut Ctx<'_>,
        msg: Arc<Message>,
        mandatory: bool,
    ) -> Result<(), AmqpError> {
        let delivered = ctx.broker.reply_to().deliver(&msg.routing_key, msg.clone());
        if !delivered && mandatory {
            warren_codec::encode_return(
                ctx.out,
                self.id,
                ctx.frame_max,
                code::NO_ROUTE,
                "NO_ROUTE",
                &msg.exchange,
                &msg.routing_key,
                &msg.properties,
                &msg.body,
            );
        }
        if let Some(c) = self.confirms.as_mut() {
            c.register(0);
            c.flush(self.id, ctx.out);
        }
        Ok(())
    }
}

/// Parses the properties the broker acts on, keeping the raw bytes for delivery.
fn build_message(
    user: &str,
    reply_address: Option<&str>,
    exchange: String,
    routing_key: String,
    properties: Bytes,
    body: Bytes,
) -> Result<(Message, Option<Table>), AmqpError> {
    let props = warren_codec::parse_properties(&properties).map_err(|e| {
        AmqpError::new(
            code::SYNTAX_ERROR,
            format!("malformed content header properties: {e}"),
        )
    })?;
    if let Some(claimed) = props.user_id()
        && claimed.as_str() != user
    {
        return Err(AmqpError::new(
            code::PRECONDITION_FAILED,
            format!(
                "user_id property set to '{}' but authenticated user was '{user}'",
                claimed.as_str()
            ),
        ));
    }
    let expiration_ms = match props.expiration() {
        None => None,
        Some(e) => Some(e.as_str().parse::<u64>().map_err(|_| {
            AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("invalid expiration '{}' for message", e.as_str()),
            )
        })?),
    };
    let headers = props.headers().as_ref().map(table_from_wire);
    // Direct reply-to: the pseudo-queue name becomes this channel's address.
    let properties = match props.reply_to() {
        Some(r) if r.as_str() == reply_to::PSEUDO_QUEUE => {
            let address = reply_address.ok_or_else(|| {
                AmqpError::new(
                    code::PRECONDITION_FAILED,
                    "fast reply consumer does not exist",
                )
            })?;
            let mut raw = BytesMut::new();
            let rewritten = props.clone().with_reply_to(address.into());
            warren_codec::encode_properties(&rewritten, &mut raw);
            raw.freeze()
        }
        _ => properties,
    };
    let msg = Message {
        exchange,
        routing_key,
        properties,
        body,
        persistent: *props.delivery_mode() == Some(2),
        priority: props.priority().unwrap_or(0),
        expiration_ms,
    };
    Ok((msg, headers))
}
