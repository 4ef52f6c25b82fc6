//! Opening a connection: protocol header, start/start-ok (SASL), tune/tune-ok,
//! open/open-ok. Ends with a [`Session`] or the error to close with.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use warren_codec::{
    AMQPClass, AMQPValue, FieldTable, Frame, LongString, ProtocolHeaderCheck, ShortString,
    spec::connection,
};

use super::io::{End, Io};
use super::sasl;
use crate::broker::Broker;
use crate::error::{AmqpError, code};

/// What the handshake settled.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub vhost: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_secs: u16,
    /// The client understands server-sent basic.cancel.
    pub cancel_notify: bool,
    /// The client understands connection.blocked / unblocked.
    pub blocked_notify: bool,
}

/// Runs the handshake. `Err(End::Io)` means the socket is already done with.
pub async fn run(io: &mut Io, broker: &Broker, peer: SocketAddr) -> Result<Session, End> {
    protocol_header(io).await?;
    let cfg = broker.config();
    io.send(0, start_method());
    io.flush().await?;
    let start_ok = match expect(io).await? {
        connection::AMQPMethod::StartOk(s) => s,
        _ => return Err(unexpected("connection.start-ok").into()),
    };
    let creds = sasl::parse(start_ok.mechanism.as_str(), start_ok.response.as_bytes()).map_err(
        |e| match e {
            sasl::SaslError::UnknownMechanism(_) => {
                AmqpError::new(code::COMMAND_INVALID, e.to_string())
            }
            sasl::SaslError::Malformed(_) => AmqpError::new(code::ACCESS_REFUSED, e.to_string()),
        },
    )?;
    let mechanism = start_ok.mechanism.as_str().to_string();
    authenticate(broker, &creds, &mechanism, peer)?;
    let cancel_notify = capability(&start_ok.client_properties, "consumer_cancel_notify");
    let blocked_notify = capability(&start_ok.client_properties, "connection.blocked");

    io.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: cfg.channel_max,
            frame_max: cfg.frame_max,
            heartbeat: cfg.heartbeat_secs,
        })),
    );
    io.flush().await?;
    let tune_ok = match expect(io).await? {
        connection::AMQPMethod::TuneOk(t) => t,
        _ => return Err(unexpected("connection.tune-ok").into()),
    };
    let (frame_max, channel_max) = negotiate(cfg.frame_max, cfg.channel_max, &tune_ok)?;
    io.frame_max = frame_max;

    let open = match expect(io).await? {
        connection::AMQPMethod::Open(o) => o,
        _ => return Err(unexpected("connection.open").into()),
    };
    let vhost = open.virtual_host.as_str().to_string();
    broker.check_vhost_access(&creds.user, &vhost)?;
    io.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    io.flush().await?;
    Ok(Session {
        user: creds.user,
        vhost,
        frame_max,
        channel_max,
        heartbeat_secs: tune_ok.heartbeat,
        cancel_notify,
        blocked_notify,
    })
}

/// Reads the 8-byte protocol header; anything else is answered with ours.
async fn protocol_header(io: &mut Io) -> Result<(), End> {
    loop {
        match warren_codec::check_protocol_header(&io.rbuf) {
            ProtocolHeaderCheck::Ok => {
                let _ = io.rbuf.split_to(8);
                return Ok(());
            }
            ProtocolHeaderCheck::Unsupported => {
                let _ = io.stream.write_all(&warren_codec::PROTOCOL_HEADER).await;
                let _ = io.stream.shutdown().await;
                return Err(End::Io);
            }
            ProtocolHeaderCheck::NeedMore => {
                if !io.fill().await? {
                    return Err(End::Io);
                }
            }
        }
    }
}

/// The next frame must be a connection method on channel 0.
async fn expect(io: &mut Io) -> Result<connection::AMQPMethod, End> {
    loop {
        match io.next_frame().await? {
            Frame::Heartbeat { .. } => continue,
            Frame::Method { channel: 0, method } => match *method {
                AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                    io.send(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    let _ = io.flush().await;
                    return Err(End::Closed);
                }
                AMQPClass::Connection(m) => return Ok(m),
                _ => return Err(unexpected("a connection method").into()),
            },
            _ => return Err(unexpected("a method frame on channel 0").into()),
        }
    }
}

fn unexpected(what: &str) -> AmqpError {
    AmqpError::new(
        code::COMMAND_INVALID,
        format!("expected {what} during the handshake"),
    )
}

fn authenticate(
    broker: &Broker,
    creds: &sasl::Credentials,
    mechanism: &str,
    peer: SocketAddr,
) -> Result<(), AmqpError> {
    let refused = || {
        AmqpError::new(
            code::ACCESS_REFUSED,
            format!(
                "Login was refused using authentication mechanism {mechanism}. \
                 For details see the broker logfile."
            ),
        )
    };
    if broker.authenticate(&creds.user, &creds.password).is_none() {
        tracing::warn!(user = %creds.user, %peer, "authentication failed");
        return Err(refused());
    }
    if broker.config().loopback_users.contains(&creds.user) && !peer.ip().is_loopback() {
        tracing::warn!(user = %creds.user, %peer, "loopback-only user connected from a remote address");
        return Err(AmqpError::new(
            code::ACCESS_REFUSED,
            format!("user '{}' can only connect via localhost", creds.user),
        ));
    }
    Ok(())
}

/// Applies the client's tune-ok within the server's limits.
fn negotiate(
    server_frame_max: u32,
    server_channel_max: u16,
    t: &connection::TuneOk,
) -> Result<(u32, u16), AmqpError> {
    let frame_max = match t.frame_max {
        0 => server_frame_max,
        f if f < warren_codec::FRAME_MIN_SIZE => {
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format!("frame_max={f} < {} min size", warren_codec::FRAME_MIN_SIZE),
            ));
        }
        f if f > server_frame_max => {
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format!("frame_max={f} > {server_frame_max} max size"),
            ));
        }
        f => f,
    };
    let channel_max = match t.channel_max {
        0 => server_channel_max,
        c if c > server_channel_max => {
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format!("channel_max={c} > {server_channel_max} max"),
            ));
        }
        c => c,
    };
    Ok((frame_max, channel_max))
}

fn capability(client_properties: &FieldTable, name: &str) -> bool {
    match client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

fn start_method() -> AMQPClass {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(ShortString::from(c), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let long = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert("product".into(), long("Warren"));
    props.insert("version".into(), long(env!("CARGO_PKG_VERSION")));
    props.insert("platform".into(), long("Rust"));
    props.insert("cluster_name".into(), long("warren"));
    props.insert("copyright".into(), long("Warren contributors"));
    props.insert(
        "information".into(),
        long("Licensed under the Apache License 2.0"),
    );
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from(b"PLAIN AMQPLAIN".to_vec()),
        locales: LongString::from(b"en_US".to_vec()),
    }))
}
