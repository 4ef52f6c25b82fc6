//! One client connection: a single task that owns the socket and every
//! channel. It decodes what the client sends, handles it, collects all
//! output (replies, deliveries, confirms) in one buffer, and writes it with
//! one socket write per round.
//!
//! ```text
//!  loop: frames already buffered ─▶ handle each (channel methods, content)
//!        flush output
//!        wait for: socket readable │ broker event (deliver/confirm/cancel) │ heartbeat tick
//! ```

mod handshake;
mod io;
pub mod names;
mod sasl;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use warren_codec::{AMQPClass, Frame, spec::channel, spec::connection};
use warren_core::queue::OwnerId;

use crate::broker::Broker;
use crate::broker::events::{ConnEvent, ConnSender};
use crate::channel::{Channel, Ctx};
use crate::error::{AmqpError, code};
use handshake::Session;
use io::{End, Io};

/// Events handled per round before the socket gets a turn again.
const EVENT_BATCH: usize = 1024;

/// Serves one accepted TCP connection until it ends.
pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let _ = stream.set_nodelay(true);
    let mut io = Io::new(stream, warren_codec::FRAME_MIN_SIZE);
    let timeout = Duration::from_secs(broker.config().handshake_timeout_secs);
    let session = match tokio::time::timeout(timeout, handshake::run(&mut io, &broker, peer)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(End::Error(e))) => {
            tracing::info!(%peer, error = %e, "handshake refused");
            io.close_with(&e).await;
            return;
        }
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::info!(%peer, "handshake timed out");
            return;
        }
    };
    tracing::debug!(%peer, user = %session.user, vhost = %session.vhost, "connection open");
    let (tx, rx) = mpsc::unbounded_channel();
    let mut conn = Connection {
        id: broker.next_id(),
        broker,
        session,
        io,
        channels: BTreeMap::new(),
        events_tx: tx,
        last_read: Instant::now(),
        last_write: Instant::now(),
        publisher: false,
        blocked: false,
    };
    let end = conn.run(rx).await;
    match &end {
        End::Error(e) => {
            tracing::info!(%peer, error = %e, "connection closed with an error");
            conn.io.close_with(e).await;
        }
        End::Io => tracing::debug!(%peer, "connection lost"),
        End::Closed => {
            // The close-ok we owe is still buffered. Then let the client
            // close the socket first, as it expects to (briefly).
            let flushed = conn.io.flush().await.is_ok();
            conn.teardown().await;
            if flushed {
                let drain = async { while let Ok(true) = conn.io.fill().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            }
            tracing::debug!(%peer, "connection closed");
            return;
        }
    }
    conn.teardown().await;
}

struct Connection {
    id: u64,
    broker: Arc<Broker>,
    session: Session,
    io: Io,
    channels: BTreeMap<u16, Channel>,
    events_tx: ConnSender,
    last_read: Instant,
    last_write: Instant,
    /// This connection has published: the memory alarm applies to it.
    publisher: bool,
    /// We stopped reading from it (and told it, if it understands).
    blocked: bool,
}

impl Connection {
    async fn run(&mut self, mut events: mpsc::UnboundedReceiver<ConnEvent>) -> End {
        let hb = u64::from(self.session.heartbeat_secs);
        let mut tick = tokio::time::interval(
            Duration::from_secs(hb.max(1)).min(Duration::from_secs(hb.max(2) / 2)),
        );
        let mut alarm = self.broker.memory().subscribe();
        loop {
            if let Err(end) = self.drain_frames().await {
                return end;
            }
            self.update_blocked(*alarm.borrow());
            if !self.io.wbuf.is_empty() {
                if let Err(end) = self.io.flush().await {
                    return end;
                }
                self.last_write = Instant::now();
                for ch in self.channels.values_mut() {
                    ch.report_written().await;
                }
            }
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { return End::Io };
                    if let Err(end) = self.on_event(ev) { return end; }
                    for _ in 0..EVENT_BATCH {
                        match events.try_recv() {
                            Ok(ev) => if let Err(end) = self.on_event(ev) { return end; },
                            Err(_) => break,
                        }
                    }
                }
                changed = alarm.changed() => {
                    if changed.is_err() { return End::Io; }
                    let on = *alarm.borrow_and_update();
                    self.update_blocked(on);
                }
                more = self.io.fill(), if !self.blocked => {
                    match more {
                        Ok(true) => self.last_read = Instant::now(),
                        Ok(false) => return End::Io,
                        Err(end) => return end,
                    }
                }
                _ = tick.tick(), if hb > 0 => {
                    if let Some(end) = self.heartbeat(hb) { return end; }
                }
            }
        }
    }

    /// Blocks a publishing connection while the memory alarm is on, and
    /// unblocks it after; clients that asked are told (connection.blocked).
    fn update_blocked(&mut self, alarm: bool) {
        let block = alarm && self.publisher;
        if block == self.blocked {
            return;
        }
        self.blocked = block;
        if self.session.blocked_notify {
            let m = if block {
                connection::AMQPMethod::Blocked(connection::Blocked {
                    reason: "low on memory".into(),
                })
            } else {
                connection::AMQPMethod::Unblocked(connection::Unblocked {})
            };
            self.io.send(0, AMQPClass::Connection(m));
        }
        // A blocked client cannot be heard; its silence is not its fault.
        self.last_read = Instant::now();
    }

    /// Sends a heartbeat when we have been quiet; gives up on a silent peer
    /// after two intervals.
    fn heartbeat(&mut self, hb: u64) -> Option<End> {
        let interval = Duration::from_secs(hb);
        if self.blocked {
            self.last_read = Instant::now();
        }
        if self.last_read.elapsed() > interval * 2 {
            tracing::info!(user = %self.session.user, "missed heartbeats from client, timeout: {hb}s");
            return Some(End::Io);
        }
        if self.last_write.elapsed() >= interval / 2 {
            warren_codec::encode_heartbeat(&mut self.io.wbuf);
        }
        None
    }

    /// Handles every complete frame already in the read buffer.
    async fn drain_frames(&mut self) -> Result<(), End> {
        while let Some(frame) = warren_codec::decode_frame(&mut self.io.rbuf, self.io.frame_max)? {
            self.on_frame(frame).await?;
        }
        for ch in self.channels.values_mut() {
            ch.flush_settles().await;
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Heartbeat { channel } => Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                format!("heartbeat frame on channel {channel}"),
            )
            .into()),
            Frame::Method { channel: 0, method } => self.on_connection_method(*method),
            Frame::Method { channel, method } => {
                if matches!(
                    *method,
                    AMQPClass::Basic(warren_codec::spec::basic::AMQPMethod::Publish(_))
                ) {
                    self.publisher = true;
                }
                self.on_channel_method(channel, *method).await
            }
            Frame::Header {
                channel,
                class_id,
                body_size,
                properties,
            } => {
                self.on_header(channel, class_id, body_size, properties)
                    .await
            }
            Frame::Body { channel, payload } => self.on_body(channel, payload).await,
        }
    }

    fn on_connection_method(&mut self, method: AMQPClass) -> Result<(), End> {
        let (c, m) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.io.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                Err(End::Closed)
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Err(End::Closed),
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                self.io.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                        connection::UpdateSecretOk {},
                    )),
                );
                Ok(())
            }
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            ) => Ok(()),
            _ => Err(
                AmqpError::new(code::CHANNEL_ERROR, "unexpected method on channel 0")
                    .on(c, m)
                    .into(),
            ),
        }
    }

    fn ctx(&mut self) -> (Ctx<'_>, &mut BTreeMap<u16, Channel>) {
        (
            Ctx {
                broker: &self.broker,
                conn_id: self.id,
                user: &self.session.user,
                vhost: &self.session.vhost,
                events: &self.events_tx,
                out: &mut self.io.wbuf,
                frame_max: self.session.frame_max,
            },
            &mut self.channels,
        )
    }

    async fn on_channel_method(&mut self, id: u16, method: AMQPClass) -> Result<(), End> {
        let (c, m) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        let owner = OwnerId(self.broker.next_id());
        let channel_max = self.session.channel_max;
        let (mut ctx, channels) = self.ctx();
        let Some(ch) = channels.get_mut(&id) else {
            if let AMQPClass::Channel(channel::AMQPMethod::Open(_)) = method {
                let max = usize::from(channel_max);
                if max != 0 && channels.len() >= max {
                    return Err(AmqpError::new(
                        code::NOT_ALLOWED,
                        format!(
                            "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                            channels.len()
                        ),
                    )
                    .on(c, m)
                    .into());
                }
                channels.insert(id, Channel::new(id, owner));
                ctx.send(
                    id,
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                );
                return Ok(());
            }
            return Err(
                AmqpError::new(code::CHANNEL_ERROR, "expected 'channel.open'")
                    .on(c, m)
                    .into(),
            );
        };
        if ch.closing {
            // After our channel.close only close/close-ok count.
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    channels.remove(&id);
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    ctx.send(
                        id,
                        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    );
                    channels.remove(&id);
                }
                _ => {}
            }
            return Ok(());
        }
        if ch.publish.is_some() {
            return Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
            )
            // RabbitMQ names the publish whose content is missing.
            .on(60, 40)
            .into());
        }
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => Err(AmqpError::new(
                code::CHANNEL_ERROR,
                "second 'channel.open' seen",
            )
            .on(c, m)
            .into()),
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                ch.teardown(ctx.broker).await;
                channels.remove(&id);
                ctx.send(
                    id,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => Ok(()),
            method => {
                let r = ch.handle(&mut ctx, method).await;
                self.after(id, r).await
            }
        }
    }

    async fn on_header(
        &mut self,
        id: u16,
        class_id: u16,
        size: u64,
        props: bytes::Bytes,
    ) -> Result<(), End> {
        let (mut ctx, channels) = self.ctx();
        let ch = content_channel(channels, id)?;
        let Some(ch) = ch else { return Ok(()) };
        let mut r = ch.on_header(&ctx, class_id, size, props);
        if r.is_ok() && ch.publish.as_ref().is_some_and(|p| p.complete()) {
            r = ch.finish_publish(&mut ctx).await;
        }
        self.after(id, r.map_err(|e| e.on(60, 40))).await
    }

    async fn on_body(&mut self, id: u16, payload: bytes::Bytes) -> Result<(), End> {
        let (mut ctx, channels) = self.ctx();
        let ch = content_channel(channels, id)?;
        let Some(ch) = ch else { return Ok(()) };
        let mut r = match ch.publish.as_mut() {
            Some(p) => p.push_body(payload),
            None => Err(AmqpError::new(
                code::UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead",
            )),
        };
        if r.is_ok() && ch.publish.as_ref().is_some_and(|p| p.complete()) {
            r = ch.finish_publish(&mut ctx).await;
        }
        self.after(id, r.map_err(|e| e.on(60, 40))).await
    }

    /// Turns a channel method's error into a channel close (soft) or a
    /// connection close (hard).
    async fn after(&mut self, id: u16, r: Result<(), AmqpError>) -> Result<(), End> {
        let Err(e) = r else { return Ok(()) };
        if e.is_hard() {
            return Err(End::Error(e));
        }
        tracing::debug!(channel = id, code = e.code, text = %e.text, "channel error");
        if let Some(ch) = self.channels.get_mut(&id) {
            ch.teardown(&self.broker).await;
            ch.closing = true;
        }
        let close = channel::Close {
            reply_code: e.code,
            reply_text: io::truncate(&e.text).as_ref().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        self.io
            .send(id, AMQPClass::Channel(channel::AMQPMethod::Close(close)));
        Ok(())
    }

    fn on_event(&mut self, ev: ConnEvent) -> Result<(), End> {
        let notify = self.session.cancel_notify;
        let (mut ctx, channels) = self.ctx();
        match ev {
            ConnEvent::Deliver(d) => {
                if let Some(ch) = channels.get_mut(&d.channel) {
                    ch.on_delivery(&mut ctx, d);
                }
            }
            ConnEvent::Reply {
                channel,
                consumer_tag,
                msg,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.on_reply(&mut ctx, &consumer_tag, &msg);
                }
            }
            ConnEvent::Confirm { channel, seq, ok } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.on_confirm(&mut ctx, seq, ok);
                }
            }
            ConnEvent::Cancelled {
                channel,
                consumer_tag,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.on_cancelled(&mut ctx, consumer_tag, notify);
                }
            }
            ConnEvent::Close { code, text } => {
                return Err(End::Error(AmqpError::with_text(code, text)));
            }
        }
        Ok(())
    }

    /// The connection is over: every channel gives back what it held, and
    /// exclusive queues go.
    async fn teardown(&mut self) {
        for (_, mut ch) in std::mem::take(&mut self.channels) {
            ch.teardown(&self.broker).await;
        }
        self.broker.connection_closed(self.id).await;
    }
}

/// The channel a content frame belongs to: `Ok(None)` if it is closing (the
/// frame is dropped), an error if it was never opened.
fn content_channel(
    channels: &mut BTreeMap<u16, Channel>,
    id: u16,
) -> Result<Option<&mut Channel>, End> {
    match channels.get_mut(&id) {
        None => Err(AmqpError::new(code::CHANNEL_ERROR, "expected 'channel.open'").into()),
        Some(ch) if ch.closing => Ok(None),
        Some(ch) => Ok(Some(ch)),
    }
}
