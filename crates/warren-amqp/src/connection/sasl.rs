//! SASL responses of connection.start-ok: PLAIN and AMQPLAIN.

/// Credentials a client presented.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Why a response could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("unknown authentication mechanism '{0}'")]
    UnknownMechanism(String),
    #[error("malformed {0} response")]
    Malformed(&'static str),
}

/// Reads the credentials out of a start-ok response.
pub fn parse(mechanism: &str, response: &[u8]) -> Result<Credentials, SaslError> {
    match mechanism {
        "PLAIN" => plain(response),
        "AMQPLAIN" => amqplain(response),
        other => Err(SaslError::UnknownMechanism(other.to_string())),
    }
}

/// PLAIN: `[authzid] NUL authcid NUL password` (RFC 4616).
fn plain(response: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = response.split(|b| *b == 0);
    let (Some(_authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    Ok(Credentials {
        user: String::from_utf8(user.to_vec()).map_err(|_| SaslError::Malformed("PLAIN"))?,
        password: String::from_utf8(pass.to_vec()).map_err(|_| SaslError::Malformed("PLAIN"))?,
    })
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and
/// PASSWORD as long strings ('S').
fn amqplain(mut buf: &[u8]) -> Result<Credentials, SaslError> {
    const E: SaslError = SaslError::Malformed("AMQPLAIN");
    let (mut user, mut password) = (None, None);
    while !buf.is_empty() {
        let klen = *buf.first().ok_or(E)? as usize;
        let key = buf.get(1..1 + klen).ok_or(E)?;
        let kind = *buf.get(1 + klen).ok_or(E)?;
        buf = &buf[2 + klen..];
        let value = match kind {
            b'S' => {
                let len_bytes: [u8; 4] = buf.get(..4).ok_or(E)?.try_into().map_err(|_| E)?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                let v = buf.get(4..4 + len).ok_or(E)?;
                buf = &buf[4 + len..];
                String::from_utf8(v.to_vec()).map_err(|_| E)?
            }
            b's' => {
                let len = *buf.first().ok_or(E)? as usize;
                let v = buf.get(1..1 + len).ok_or(E)?;
                buf = &buf[1 + len..];
                String::from_utf8(v.to_vec()).map_err(|_| E)?
            }
            _ => return Err(E),
        };
        match key {
            b"LOGIN" => user = Some(value),
            b"PASSWORD" => password = Some(value),
            _ => {}
        }
    }
    Ok(Credentials {
        user: user.ok_or(E)?,
        password: password.ok_or(E)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_authzid() {
        let c = parse("PLAIN", b"\0guest\0pw").unwrap();
        assert_eq!(
            c,
            Credentials {
                user: "guest".into(),
                password: "pw".into()
            }
        );
        let c = parse("PLAIN", b"admin\0guest\0pw").unwrap();
        assert_eq!(c.user, "guest");
        assert_eq!(parse("PLAIN", b"guest"), Err(SaslError::Malformed("PLAIN")));
    }

    #[test]
    fn amqplain_table() {
        let mut t = Vec::new();
        for (k, v) in [("LOGIN", "app1"), ("PASSWORD", "s3cret")] {
            t.push(k.len() as u8);
            t.extend_from_slice(k.as_bytes());
            t.push(b'S');
            t.extend_from_slice(&(v.len() as u32).to_be_bytes());
            t.extend_from_slice(v.as_bytes());
        }
        let c = parse("AMQPLAIN", &t).unwrap();
        assert_eq!(
            c,
            Credentials {
                user: "app1".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            parse("AMQPLAIN", &t[..t.len() - 2]),
            Err(SaslError::Malformed("AMQPLAIN"))
        );
    }

    #[test]
    fn unknown_mechanism() {
        assert_eq!(
            parse("EXTERNAL", b""),
            Err(SaslError::UnknownMechanism("EXTERNAL".into()))
        );
    }
}
