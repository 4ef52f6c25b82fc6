//! `amqp://user:pass@host:port/vhost` as the native client needs it, following
//! RabbitMQ's URI spec: every part is optional (guest/guest, localhost, 5672, vhost
//! "/"), user, password and vhost are percent-decoded, a path of just "/" names the
//! empty vhost, and query parameters (heartbeat, frame_max, …) are ignored because
//! perf negotiates its own. TLS (`amqps`) is not supported by this client.

use anyhow::{Context as _, bail};

/// Port of a plain-TCP AMQP 0-9-1 broker.
const DEFAULT_PORT: u16 = 5672;

/// The parts of an AMQP URI the native client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUri {
    /// Host name or IP literal (without IPv6 brackets).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl AmqpUri {
    /// Parses an `amqp://` URI.
    pub fn parse(uri: &str) -> anyhow::Result<Self> {
        let Some(rest) = uri.strip_prefix("amqp://") else {
            if uri.starts_with("amqps://") {
                bail!("{uri}: amqps (TLS) is not supported by --client native");
            }
            bail!("{uri}: not an amqp:// URI");
        };
        // Query and fragment carry client tuning perf does not take from the URI.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let vhost = match path {
            None => "/".to_string(),
            Some(p) => decode(p).with_context(|| format!("{uri}: vhost"))?,
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("guest".to_string(), "guest".to_string()),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    decode(user).with_context(|| format!("{uri}: user"))?,
                    decode(pass).with_context(|| format!("{uri}: password"))?,
                )
            }
        };
        let (host, port) = split_host_port(hostport).with_context(|| format!("{uri}: host"))?;
        Ok(Self {
            host,
            port,
            user,
            password,
            vhost,
        })
    }

    /// `host:port` for `TcpStream::connect`, with brackets around IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(hostport: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            bail!("unclosed '[' in {hostport:?}");
        };
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => bail!("unexpected {after:?} after IPv6 address"),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p.parse().with_context(|| format!("bad port {p:?}"))?,
    };
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        decode(host)?
    };
    Ok((host, port))
}

/// Percent-decoding; the result must be UTF-8 (AMQP short strings are text).
fn decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else {
                bail!("bad percent escape at byte {i} of {s:?}");
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("not UTF-8 after percent-decoding")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(user: &str, password: &str, host: &str, port: u16, vhost: &str) -> AmqpUri {
        AmqpUri {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            vhost: vhost.into(),
        }
    }

    #[test]
    fn full_uri_with_encoded_default_vhost() {
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(u, uri("guest", "guest", "127.0.0.1", 5672, "/"));
        assert_eq!(u.address(), "127.0.0.1:5672");
        let u = AmqpUri::parse("amqp://bob:s3cret@broker:5680/%2F").unwrap();
        assert_eq!(u, uri("bob", "s3cret", "broker", 5680, "/"));
    }

    #[test]
    fn defaults_per_rabbitmq_uri_spec() {
        assert_eq!(
            AmqpUri::parse("amqp://").unwrap(),
            uri("guest", "guest", "localhost", 5672, "/")
        );
        assert_eq!(
            AmqpUri::parse("amqp://h").unwrap(),
            uri("guest", "guest", "h", 5672, "/")
        );
        // A bare "/" path names the empty vhost, not the default one.
        assert_eq!(AmqpUri::parse("amqp://h:1/").unwrap().vhost, "");
        assert_eq!(AmqpUri::parse("amqp://u@h/v").unwrap().password, "");
        assert_eq!(AmqpUri::parse("amqp://h:/v").unwrap().port, 5672);
    }

    #[test]
    fn percent_decoding_of_every_part() {
        let u = AmqpUri::parse("amqp://us%40er:p%3Ass%2Fw@h:1/my%2Fvhost%20x").unwrap();
        assert_eq!(u, uri("us@er", "p:ss/w", "h", 1, "my/vhost x"));
        // The last '@' separates user info, so a raw '@' in the password still parses.
        let u = AmqpUri::parse("amqp://u:p@ss@h/v").unwrap();
        assert_eq!((u.password.as_str(), u.host.as_str()), ("p@ss", "h"));
    }

    #[test]
    fn ipv6_and_query() {
        let u = AmqpUri::parse("amqp://[::1]:5690/v?heartbeat=10&frame_max=8192").unwrap();
        assert_eq!(u, uri("guest", "guest", "::1", 5690, "v"));
        assert_eq!(u.address(), "[::1]:5690");
        assert_eq!(AmqpUri::parse("amqp://[::1]").unwrap().port, 5672);
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        assert!(AmqpUri::parse("amqps://h/").is_err());
        assert!(AmqpUri::parse("http://h/").is_err());
        assert!(AmqpUri::parse("amqp://h:port/").is_err());
        assert!(AmqpUri::parse("amqp://h:70000/").is_err());
        assert!(AmqpUri::parse("amqp://h/%zz").is_err());
        assert!(AmqpUri::parse("amqp://h/%2").is_err());
        assert!(AmqpUri::parse("amqp://[::1/").is_err());
        assert!(AmqpUri::parse("amqp://h/%ff").is_err(), "not UTF-8");
    }
}
