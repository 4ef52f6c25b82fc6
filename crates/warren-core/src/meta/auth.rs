//! Users, password hashes and permissions, with RabbitMQ's rules.
//!
//! Password hashes are RabbitMQ's (`rabbit_password`): a random 4-byte
//! salt followed by H(salt ‖ password), base64 in definition files, so a
//! definitions export from RabbitMQ logs in unchanged. Permissions are three
//! regexes (configure, write, read) searched (not anchored) in the resource
//! name; an empty regex means "nothing" (RabbitMQ turns it into `^$`).

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::error::MetaError;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub password_hash: PasswordHash,
    pub tags: Vec<String>,
}

/// A salted password hash in one of RabbitMQ's schemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    Sha256 {
        salt: [u8; 4],
        hash: [u8; 32],
    },
    Sha512 {
        salt: [u8; 4],
        hash: [u8; 64],
    },
    Md5 {
        salt: [u8; 4],
        hash: [u8; 16],
    },
    /// No password: the user cannot log in with PLAIN.
    None,
}

pub(crate) const SHA256: &str = "rabbit_password_hashing_sha256";
pub(crate) const SHA512: &str = "rabbit_password_hashing_sha512";
pub(crate) const MD5: &str = "rabbit_password_hashing_md5";

fn salted<D: Digest>(salt: &[u8; 4], password: &str) -> Vec<u8> {
    let mut h = D::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().to_vec()
}

/// Compares without an early exit, so timing does not reveal how many
/// leading bytes of a guess were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn split<const N: usize>(raw: &[u8], algorithm: &str) -> Result<([u8; 4], [u8; N]), MetaError> {
    let bad = || {
        MetaError::precondition_failed(format!(
            "password hash of {} bytes does not fit {algorithm}",
            raw.len()
        ))
    };
    let (salt, hash) = raw.split_at_checked(4).ok_or_else(bad)?;
    let salt: [u8; 4] = salt.try_into().map_err(|_| bad())?;
    let hash: [u8; N] = hash.try_into().map_err(|_| bad())?;
    Ok((salt, hash))
}

impl PasswordHash {
    /// Parses a hash from a RabbitMQ definitions file. An empty hash means
    /// "no password"; an empty algorithm means MD5, the scheme RabbitMQ used
    /// before it recorded the algorithm.
    pub fn from_rabbit(b64: &str, algorithm: &str) -> Result<Self, MetaError> {
        if b64.is_empty() {
            return Ok(PasswordHash::None);
        }
        let raw = B64.decode(b64).map_err(|e| {
            MetaError::precondition_failed(format!("password hash is not base64: {e}"))
        })?;
        match algorithm {
            SHA256 => {
                split(&raw, algorithm).map(|(salt, hash)| PasswordHash::Sha256 { salt, hash })
            }
            SHA512 => {
                split(&raw, algorithm).map(|(salt, hash)| PasswordHash::Sha512 { salt, hash })
            }
            MD5 | "" => split(&raw, MD5).map(|(salt, hash)| PasswordHash::Md5 { salt, hash }),
            other => Err(MetaError::precondition_failed(format!(
                "unknown password hashing algorithm '{other}'"
            ))),
        }
    }

    /// The hash as a definitions file stores it: (base64, algorithm).
    pub fn to_rabbit(&self) -> (String, &'static str) {
        let (alg, raw): (&'static str, Vec<u8>) = match self {
            PasswordHash::Sha256 { salt, hash } => (SHA256, [&salt[..], &hash[..]].concat()),
            PasswordHash::Sha512 { salt, hash } => (SHA512, [&salt[..], &hash[..]].concat()),
            PasswordHash::Md5 { salt, hash } => (MD5, [&salt[..], &hash[..]].concat()),
            PasswordHash::None => (SHA256, Vec::new()),
        };
        (B64.encode(raw), alg)
    }

    /// Hashes `password` with the given salt. The caller draws the salt (the
    /// core has no randomness), e.g. from the frontend's RNG.
    pub fn new_sha256(password: &str, salt: [u8; 4]) -> Self {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&salted::<Sha256>(&salt, password));
        PasswordHash::Sha256 { salt, hash }
    }

    pub fn verify(&self, password: &str) -> bool {
        match self {
            PasswordHash::Sha256 { salt, hash } => {
                constant_time_eq(&salted::<Sha256>(salt, password), hash)
            }
            PasswordHash::Sha512 { salt, hash } => {
                constant_time_eq(&salted::<Sha512>(salt, password), hash)
            }
            PasswordHash::Md5 { salt, hash } => {
                constant_time_eq(&salted::<Md5>(salt, password), hash)
            }
            PasswordHash::None => false,
        }
    }
}

/// Which operation a permission check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// The kind of resource a permission check names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Exchange,
    Queue,
}

impl ResourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ResourceKind::Exchange => "exchange",
            ResourceKind::Queue => "queue",
        }
    }
}

/// A user's permissions in one vhost, as regex texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permission {
    /// `.*` for all three: everything allowed.
    pub fn full() -> Self {
        Permission {
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }
    }
}

/// A permission regex compiled once at SetPermissions; compared by text so
/// that the state stays `PartialEq`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRegex {
    text: String,
    regex: regex::Regex,
}

impl PartialEq for CompiledRegex {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Bounds compile-time memory for a regex given by an administrator.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl CompiledRegex {
    fn new(text: &str) -> Result<Self, MetaError> {
        let pattern = if text.is_empty() { "^$" } else { text };
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| MetaError::precondition_failed(format!("invalid regexp '{text}': {e}")))?;
        Ok(CompiledRegex {
            text: text.to_owned(),
            regex,
        })
    }

    fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledPermission {
    configure: CompiledRegex,
    write: CompiledRegex,
    read: CompiledRegex,
}

impl CompiledPermission {
    pub(crate) fn new(p: &Permission) -> Result<Self, MetaError> {
        Ok(CompiledPermission {
            configure: CompiledRegex::new(&p.configure)?,
            write: CompiledRegex::new(&p.write)?,
            read: CompiledRegex::new(&p.read)?,
        })
    }

    pub(crate) fn permission(&self) -> Permission {
        Permission {
            configure: self.configure.text.clone(),
            write: self.write.text.clone(),
            read: self.read.text.clone(),
        }
    }

    pub(crate) fn allows(&self, access: Access, name: &str) -> bool {
        match access {
            Access::Configure => self.configure.is_match(name),
            Access::Write => self.write.is_match(name),
            Access::Read => self.read.is_match(name),
        }
    }
}
