//! A raw AMQP 0-9-1 client over a plain `TcpStream`, for feeding a broker
//! frames no real client would send.
//!
//! Frames are encoded by hand here, deliberately without warren-codec: a bug
//! shared by the server's codec and the test's codec would otherwise go
//! unnoticed. Only what the bad-input and handshake tests need is covered.

mod table;

pub use table::{FieldValue, decode_table, lookup};

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::EVENT_TIMEOUT;

/// `AMQP 0 0 9 1`.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// One frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    /// `(class, method)` when this is a method frame.
    pub fn method_id(&self) -> Option<(u16, u16)> {
        if self.kind != FRAME_METHOD || self.payload.len() < 4 {
            return None;
        }
        let p = &self.payload;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }
}

/// A `connection.close` or `channel.close` received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub channel: u16,
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// What the server said in `connection.start` and `connection.tune`.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub server_properties: Table,
    pub mechanisms: String,
    pub locales: String,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// Builds method arguments field by field, big-endian as the spec says.
/// Consecutive bits share an octet; call [`Args::bits`] with all of them.
#[derive(Debug, Default, Clone)]
pub struct Args(Vec<u8>);

impl Args {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn octet(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn short(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn long(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn longlong(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A short string; panics past 255 bytes since tests only use literals.
    pub fn shortstr(mut self, s: &str) -> Self {
        let len = u8::try_from(s.len()).unwrap_or_else(|_| panic!("shortstr too long: {s}"));
        self.0.push(len);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn longstr(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&len32(s.len()).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    /// Packs booleans into one octet, first argument in the lowest bit.
    pub fn bits(mut self, bits: &[bool]) -> Self {
        let mut octet = 0u8;
        for (i, b) in bits.iter().enumerate() {
            if *b {
                octet |= 1 << i;
            }
        }
        self.0.push(octet);
        self
    }
    pub fn empty_table(self) -> Self {
        self.long(0)
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or_else(|_| panic!("length {len} does not fit a u32"))
}

/// Encodes a frame: type, channel, size, payload, frame-end.
pub fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    frame_with_end(kind, channel, payload, FRAME_END)
}

/// Like [`frame`] but with any frame-end octet, to send a broken one.
pub fn frame_with_end(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&len32(payload.len()).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(end);
    out
}

/// A method frame's payload: class id, method id, arguments.
pub fn method_payload(class: u16, method: u16, args: Args) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&method.to_be_bytes());
    out.extend_from_slice(&args.into_bytes());
    out
}

/// A whole method frame.
pub fn method_frame(channel: u16, class: u16, method: u16, args: Args) -> Vec<u8> {
    frame(FRAME_METHOD, channel, &method_payload(class, method, args))
}

/// A content header frame with no properties set.
pub fn content_header_frame(channel: u16, class: u16, body_size: u64) -> Vec<u8> {
    let payload = Args::new()
        .short(class)
        .short(0) // weight
        .longlong(body_size)
        .short(0) // property flags
        .into_bytes();
    frame(FRAME_HEADER, channel, &payload)
}

/// `basic.publish` (60,40) to `exchange` with `routing_key`, no flags.
pub fn basic_publish_frame(channel: u16, exchange: &str, routing_key: &str) -> Vec<u8> {
    let args = Args::new()
        .short(0)
        .shortstr(exchange)
        .shortstr(routing_key)
        .bits(&[false, false]);
    method_frame(channel, 60, 40, args)
}

/// A TCP connection speaking raw frames.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Opens the TCP connection; nothing is sent yet.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects and does the whole handshake (PLAIN guest/guest, vhost `/`,
    /// the server's tune values, heartbeats off).
    pub async fn open(addr: SocketAddr) -> anyhow::Result<(Self, Handshake)> {
        let mut conn = Self::connect(addr).await?;
        let hs = conn.handshake("guest", "guest", "/", None).await?;
        Ok((conn, hs))
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads exactly `n` raw bytes (e.g. the protocol header the server
    /// answers a bad header with); `None` if the server closed first.
    pub async fn read_exact_raw(&mut self, n: usize) -> anyhow::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.drain(..n).collect()))
    }

    /// Whether the server has closed the TCP connection, reading (and
    /// discarding) anything it still sends, within `limit`.
    pub async fn wait_eof(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let fut = async {
            loop {
                self.buf.clear();
                match self.fill().await {
                    Ok(true) => continue,
                    Ok(false) => return true,
                    // A reset also means the server is gone.
                    Err(_) => return true,
                }
            }
        };
        Ok(tokio::time::timeout(limit, fut).await.unwrap_or(false))
    }

    /// Reads more bytes into the buffer; false on EOF.
    async fn fill(&mut self) -> anyhow::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next frame, `None` if the server closed the connection first.
    pub async fn read_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        tokio::time::timeout(EVENT_TIMEOUT, self.read_frame_inner())
            .await
            .map_err(|_| anyhow::anyhow!("no frame within {EVENT_TIMEOUT:?}"))?
    }

    async fn read_frame_inner(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                let total = 7 + usize::try_from(size)? + 1;
                if self.buf.len() >= total {
                    let bytes: Vec<u8> = self.buf.drain(..total).collect();
                    anyhow::ensure!(
                        bytes[total - 1] == FRAME_END,
                        "server sent a bad frame end {:#x}",
                        bytes[total - 1]
                    );
                    return Ok(Some(Frame {
                        kind: bytes[0],
                        channel: u16::from_be_bytes([bytes[1], bytes[2]]),
                        payload: bytes[7..total - 1].to_vec(),
                    }));
                }
            }
            if !self.fill().await? {
                anyhow::ensure!(self.buf.is_empty(), "EOF inside a frame");
                return Ok(None);
            }
        }
    }

    /// Reads frames until a method frame other than a heartbeat arrives.
    pub async fn read_method(&mut self) -> anyhow::Result<Frame> {
        loop {
            let frame = self
                .read_frame()
                .await?
                .context("server closed the connection")?;
            if frame.kind != FRAME_HEARTBEAT {
                return Ok(frame);
            }
        }
    }

    /// Reads until the server's `connection.close`, answers it with
    /// `close-ok`, and returns it. Fails if the server hangs up first.
    pub async fn expect_connection_close(&mut self) -> anyhow::Result<Close> {
        loop {
            let frame = self
                .read_frame()
                .await?
                .context("server hung up without connection.close")?;
            if frame.method_id() == Some((10, 50)) {
                let close = parse_close(&frame)?;
                // The server may already be gone; close-ok is a courtesy.
                let _ = self.send(&method_frame(0, 10, 51, Args::new())).await;
                return Ok(close);
            }
        }
    }

    /// Reads until a `channel.close` (20,40) and answers it with close-ok.
    pub async fn expect_channel_close(&mut self) -> anyhow::Result<Close> {
        loop {
            let frame = self
                .read_frame()
                .await?
                .context("server hung up without channel.close")?;
            match frame.method_id() {
                Some((20, 40)) => {
                    let close = parse_close(&frame)?;
                    self.send(&method_frame(frame.channel, 20, 41, Args::new()))
                        .await?;
                    return Ok(close);
                }
                Some((10, 50)) => anyhow::bail!(
                    "expected channel.close, got connection.close {:?}",
                    parse_close(&frame)?
                ),
                _ => {}
            }
        }
    }

    /// Protocol header, start/start-ok (PLAIN), tune/tune-ok, open/open-ok.
    /// `tune` overrides the (channel_max, frame_max, heartbeat) sent back;
    /// `None` echoes the server's values with heartbeats off.
    pub async fn handshake(
        &mut self,
        user: &str,
        password: &str,
        vhost: &str,
        tune: Option<(u16, u32, u16)>,
    ) -> anyhow::Result<Handshake> {
        self.send(PROTOCOL_HEADER).await?;
        let start = self.read_method().await?;
        anyhow::ensure!(
            start.method_id() == Some((10, 10)),
            "expected connection.start, got {start:?}"
        );
        let (server_properties, mechanisms, locales) = parse_start(&start.payload)?;
        let mut response = vec![0u8];
        response.extend_from_slice(user.as_bytes());
        response.push(0);
        response.extend_from_slice(password.as_bytes());
        let start_ok = Args::new()
            .empty_table()
            .shortstr("PLAIN")
            .longstr(&response)
            .shortstr("en_US");
        self.send(&method_frame(0, 10, 11, start_ok)).await?;
        let tune_frame = self.read_method().await?;
        anyhow::ensure!(
            tune_frame.method_id() == Some((10, 30)),
            "expected connection.tune, got {tune_frame:?}"
        );
        let mut r = Reader::new(tune_frame.payload.get(4..).context("short tune")?);
        let (channel_max, frame_max, heartbeat) = (r.short()?, r.long()?, r.short()?);
        let (c, f, h) = tune.map_or((channel_max, frame_max, 0), |t| t);
        self.send(&method_frame(
            0,
            10,
            31,
            Args::new().short(c).long(f).short(h),
        ))
        .await?;
        let open = Args::new().shortstr(vhost).shortstr("").bits(&[false]);
        self.send(&method_frame(0, 10, 40, open)).await?;
        let open_ok = self.read_method().await?;
        anyhow::ensure!(
            open_ok.method_id() == Some((10, 41)),
            "expected connection.open-ok, got {open_ok:?}"
        );
        Ok(Handshake {
            server_properties,
            mechanisms,
            locales,
            channel_max,
            frame_max,
            heartbeat,
        })
    }

    /// `channel.open` and wait for `open-ok`.
    pub async fn open_channel(&mut self, channel: u16) -> anyhow::Result<()> {
        self.send(&method_frame(channel, 20, 10, Args::new().shortstr("")))
            .await?;
        let ok = self.read_method().await?;
        anyhow::ensure!(
            ok.method_id() == Some((20, 11)) && ok.channel == channel,
            "expected channel.open-ok on {channel}, got {ok:?}"
        );
        Ok(())
    }
}

/// A decoded field table, in wire order.
pub type Table = Vec<(String, FieldValue)>;

fn parse_start(payload: &[u8]) -> anyhow::Result<(Table, String, String)> {
    let mut r = Reader::new(payload.get(4..).context("short connection.start")?);
    let (major, minor) = (r.octet()?, r.octet()?);
    anyhow::ensure!((major, minor) == (0, 9), "server speaks {major}-{minor}");
    let props = decode_table(&mut r)?;
    let mechanisms = String::from_utf8_lossy(r.longstr()?).into_owned();
    let locales = String::from_utf8_lossy(r.longstr()?).into_owned();
    Ok((props, mechanisms, locales))
}

/// Parses a `connection.close` or `channel.close` frame.
pub fn parse_close(frame: &Frame) -> anyhow::Result<Close> {
    let mut r = Reader::new(frame.payload.get(4..).context("short close")?);
    Ok(Close {
        channel: frame.channel,
        code: r.short()?,
        text: String::from_utf8_lossy(r.shortstr()?).into_owned(),
        class_id: r.short()?,
        method_id: r.short()?,
    })
}

/// A cursor over big-endian AMQP fields.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
    pub fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        anyhow::ensure!(
            self.bytes.len() >= n,
            "need {n} bytes, have {}",
            self.bytes.len()
        );
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn octet(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn short(&mut self) -> anyhow::Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn long(&mut self) -> anyhow::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn longlong(&mut self) -> anyhow::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    pub fn shortstr(&mut self) -> anyhow::Result<&'a [u8]> {
        let n = self.octet()?;
        self.take(usize::from(n))
    }
    pub fn longstr(&mut self) -> anyhow::Result<&'a [u8]> {
        let n = self.long()?;
        self.take(usize::try_from(n)?)
    }
}
