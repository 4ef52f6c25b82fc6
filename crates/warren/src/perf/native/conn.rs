//! One AMQP connection with channel 1 open: the handshake, the two buffers, and the
//! non-blocking I/O step the producer and consumer loops are built on.
//!
//! The read buffer takes whatever the socket has (up to [`READ_CHUNK`]) per
//! syscall and the loops then handle every complete frame in it; the write buffer
//! collects many frames and is written with as few syscalls as the socket allows.
//! Both buffers are reused for the whole connection, so the steady state allocates
//! nothing here.

use super::frames::{CHANNEL, Incoming, next_frame};
use super::uri::AmqpUri;
use anyhow::{Context as _, anyhow, bail};
use bytes::{Buf as _, BytesMut};
use std::io::ErrorKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, Interest};
use tokio::net::TcpStream;
use warren_codec::spec::{channel, connection};
use warren_codec::{
    AMQPClass, AMQPValue, FieldTable, LongString, PROTOCOL_HEADER, ShortString, encode_method,
};

/// Bytes one read may add to the read buffer.
const READ_CHUNK: usize = 256 * 1024;

/// Largest frame accepted before tune, and our offer when the server sets no limit.
const DEFAULT_FRAME_MAX: u32 = 128 * 1024;

/// How long a polite close waits for connection.close-ok.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A connection whose channel 1 is open.
pub struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet handled.
    pub rbuf: BytesMut,
    /// Frames encoded but not yet written.
    pub wbuf: BytesMut,
    /// Negotiated in connection.tune.
    pub frame_max: u32,
}

impl Conn {
    /// Connects, logs in with PLAIN, tunes (heartbeats off) and opens channel 1.
    pub async fn open(uri: &str) -> anyhow::Result<Self> {
        let parsed = AmqpUri::parse(uri)?;
        let stream = TcpStream::connect(parsed.address())
            .await
            .with_context(|| format!("cannot connect to {}", parsed.address()))?;
        // Frames are batched by hand; Nagle would only add delay.
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            frame_max: DEFAULT_FRAME_MAX,
        };
        conn.handshake(&parsed)
            .await
            .with_context(|| format!("AMQP handshake with {}", parsed.address()))?;
        Ok(conn)
    }

    async fn handshake(&mut self, uri: &AmqpUri) -> anyhow::Result<()> {
        self.wbuf.extend_from_slice(&PROTOCOL_HEADER);
        self.flush().await?;
        let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = self.recv().await? else {
            bail!("expected connection.start");
        };
        let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            bail!("broker does not offer PLAIN (offers {mechanisms:?})");
        }
        let response = format!("\0{}\0{}", uri.user, uri.password);
        self.send(
            0,
            connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(),
                mechanism: "PLAIN".into(),
                response: LongString::from(response.into_bytes()),
                locale: "en_US".into(),
            }),
        );
        self.flush().await?;
        let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) = self.recv().await? else {
            bail!("expected connection.tune");
        };
        if tune.frame_max != 0 {
            self.frame_max = tune.frame_max;
        }
        self.send(
            0,
            connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: self.frame_max,
                heartbeat: 0,
            }),
        );
        let vhost = ShortString::try_new(uri.vhost.as_str()).map_err(|e| anyhow!("vhost: {e}"))?;
        self.send(
            0,
            connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost,
            }),
        );
        self.flush().await?;
        match self.recv().await? {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
            other => bail!("expected connection.open-ok, got {other:?}"),
        }
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        match self.call(open).await? {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            other => bail!("expected channel.open-ok, got {other:?}"),
        }
    }

    /// Queues a connection-class method (channel 0).
    fn send(&mut self, channel: u16, method: connection::AMQPMethod) {
        encode_method(channel, &AMQPClass::Connection(method), &mut self.wbuf);
    }

    /// Sends a method on channel 1 and returns the broker's reply (setup only).
    pub async fn call(&mut self, method: AMQPClass) -> anyhow::Result<AMQPClass> {
        encode_method(CHANNEL, &method, &mut self.wbuf);
        self.flush().await?;
        self.recv().await
    }

    /// Writes the whole write buffer.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// The next method from the broker (setup only: content frames are skipped);
    /// a close from the broker is answered and returned as an error.
    async fn recv(&mut self) -> anyhow::Result<AMQPClass> {
        loop {
            while let Some(frame) = next_frame(&mut self.rbuf, self.frame_max)? {
                if let Incoming::Method { method, .. } = frame {
                    self.check_close(&method)?;
                    return Ok(*method);
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// Turns connection.close / channel.close from the broker into an error, after
    /// queueing the close-ok the protocol asks for. Other methods pass.
    pub fn check_close(&mut self, method: &AMQPClass) -> anyhow::Result<()> {
        let (what, code, text, ok) = match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => (
                "connection",
                c.reply_code,
                c.reply_text.as_str(),
                AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
            ),
            AMQPClass::Channel(channel::AMQPMethod::Close(c)) => (
                "channel",
                c.reply_code,
                c.reply_text.as_str(),
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            ),
            _ => return Ok(()),
        };
        let channel = if matches!(ok, AMQPClass::Connection(_)) {
            0
        } else {
            CHANNEL
        };
        encode_method(channel, &ok, &mut self.wbuf);
        // Best effort: the error below ends the connection anyway.
        let _ = self.stream.try_write(&self.wbuf);
        Err(anyhow!("the broker closed the {what}: {code} {text}"))
    }

    /// Waits until the socket is readable, or writable while the write buffer holds
    /// bytes, then reads what is available and writes what fits, without blocking.
    /// Cancel-safe, so loops can race it against their stop signal and timers.
    pub async fn io(&mut self) -> anyhow::Result<()> {
        let interest = if self.wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = self.stream.ready(interest).await?;
        if ready.is_writable() {
            self.try_write()?;
        }
        if ready.is_readable() || ready.is_read_closed() {
            self.try_read()?;
        }
        Ok(())
    }

    fn try_write(&mut self) -> anyhow::Result<()> {
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(0) => bail!("the broker stopped accepting bytes"),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn try_read(&mut self) -> anyhow::Result<()> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => bail!("the broker closed the connection"),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes politely: connection.close, then waits (bounded) for close-ok while
    /// discarding whatever else still arrives. Best effort: counts are final by now.
    pub async fn close(mut self) {
        self.send(
            0,
            connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "perf done".into(),
                class_id: 0,
                method_id: 0,
            }),
        );
        let closed = async {
            self.flush().await?;
            loop {
                match self.recv().await? {
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                        return anyhow::Ok(());
                    }
                    _ => continue,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, closed).await;
    }
}

/// What perf tells the broker about itself; the capabilities are those whose
/// methods perf handles (confirms with nack, cancel notifications).
fn client_properties() -> FieldTable {
    let mut capabilities = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
    ] {
        capabilities.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert(
        "product".into(),
        AMQPValue::LongString("warren perf (native client)".into()),
    );
    props.insert(
        "version".into(),
        AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
    );
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props
}
