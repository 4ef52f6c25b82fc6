//! The socket side of a connection: a read buffer decoded into frames, and a
//! write buffer that collects many frames for one socket write.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_codec::{AMQPClass, Frame, spec::connection};

use crate::error::AmqpError;

const READ_CHUNK: usize = 64 * 1024;

/// Why a connection ends.
#[derive(Debug)]
pub enum End {
    /// The peer closed the socket or it failed.
    Io,
    /// A protocol error to report with connection.close.
    Error(AmqpError),
    /// Closed cleanly (close/close-ok exchanged).
    Closed,
}

impl From<AmqpError> for End {
    fn from(e: AmqpError) -> Self {
        End::Error(e)
    }
}

impl From<warren_codec::CodecError> for End {
    fn from(e: warren_codec::CodecError) -> Self {
        let (class_id, method_id) = e.class_method();
        End::Error(AmqpError::new(e.reply_code(), e.to_string()).on(class_id, method_id))
    }
}

/// Buffers and socket of one connection.
pub struct Io {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    pub frame_max: u32,
}

impl Io {
    pub fn new(stream: TcpStream, frame_max: u32) -> Self {
        Io {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            frame_max,
        }
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    pub async fn fill(&mut self) -> Result<bool, End> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) | Err(_) => Ok(false),
            Ok(_) => Ok(true),
        }
    }

    /// The next complete frame, reading as needed.
    pub async fn next_frame(&mut self) -> Result<Frame, End> {
        loop {
            if let Some(f) = warren_codec::decode_frame(&mut self.rbuf, self.frame_max)? {
                return Ok(f);
            }
            if !self.fill().await? {
                return Err(End::Io);
            }
        }
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), End> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        r.map_err(|_| End::Io)
    }

    pub fn send(&mut self, channel: u16, method: AMQPClass) {
        warren_codec::encode_method(channel, &method, &mut self.wbuf);
    }

    /// Sends connection.close for an error, waits briefly for close-ok, and
    /// gives up on the socket either way.
    pub async fn close_with(&mut self, e: &AmqpError) {
        let close = connection::Close {
            reply_code: e.code,
            reply_text: truncate(&e.text).as_ref().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        };
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(close)),
        );
        if self.flush().await.is_err() {
            return;
        }
        let wait = async {
            loop {
                match self.next_frame().await {
                    Ok(Frame::Method { method, .. })
                        if matches!(
                            *method,
                            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
                                | AMQPClass::Connection(connection::AMQPMethod::Close(_))
                        ) =>
                    {
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), wait).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Reply texts are short strings: RabbitMQ cuts longer ones to 252 bytes
/// (at a char boundary) followed by "...".
pub fn truncate(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= 255 {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = 252;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}...", &s[..end]))
}
