//! meta::{User, PasswordHash, Permission} <-> log::{User, PasswordHash, Permission}.

use warren_core::meta::{PasswordHash, Permission, User};
use warren_rpc::log as pb;
use warren_rpc::log::password_hash::Algorithm;

use super::{DecodeError, FromProto, IntoProto, invalid, required};

impl IntoProto<pb::PasswordHash> for PasswordHash {
    fn into_proto(self) -> pb::PasswordHash {
        let (alg, salt, hash): (Algorithm, &[u8], &[u8]) = match &self {
            PasswordHash::Sha256 { salt, hash } => (Algorithm::Sha256, salt, hash),
            PasswordHash::Sha512 { salt, hash } => (Algorithm::Sha512, salt, hash),
            PasswordHash::Md5 { salt, hash } => (Algorithm::Md5, salt, hash),
            PasswordHash::None => (Algorithm::None, &[], &[]),
        };
        pb::PasswordHash {
            algorithm: alg.into(),
            salt: bytes::Bytes::copy_from_slice(salt),
            hash: bytes::Bytes::copy_from_slice(hash),
        }
    }
}

fn fixed<const N: usize>(b: &[u8], field: &'static str) -> Result<[u8; N], DecodeError> {
    b.try_into()
        .map_err(|_| invalid(field, format!("{} bytes, expected {N}", b.len())))
}

impl FromProto<pb::PasswordHash> for PasswordHash {
    fn from_proto(p: pb::PasswordHash) -> Result<Self, DecodeError> {
        let alg = Algorithm::try_from(p.algorithm)
            .map_err(|_| invalid("password_hash.algorithm", p.algorithm.to_string()))?;
        let salt = || fixed::<4>(&p.salt, "password_hash.salt");
        let hash = "password_hash.hash";
        Ok(match alg {
            Algorithm::None => PasswordHash::None,
            Algorithm::Sha256 => PasswordHash::Sha256 {
                salt: salt()?,
                hash: fixed(&p.hash, hash)?,
            },
            Algorithm::Sha512 => PasswordHash::Sha512 {
                salt: salt()?,
                hash: fixed(&p.hash, hash)?,
            },
            Algorithm::Md5 => PasswordHash::Md5 {
                salt: salt()?,
                hash: fixed(&p.hash, hash)?,
            },
        })
    }
}

impl IntoProto<pb::User> for User {
    fn into_proto(self) -> pb::User {
        pb::User {
            name: self.name,
            password_hash: Some(self.password_hash.into_proto()),
            tags: self.tags,
        }
    }
}

impl FromProto<pb::User> for User {
    fn from_proto(p: pb::User) -> Result<Self, DecodeError> {
        Ok(User {
            name: p.name,
            password_hash: PasswordHash::from_proto(required(
                p.password_hash,
                "user.password_hash",
            )?)?,
            tags: p.tags,
        })
    }
}

impl IntoProto<pb::Permission> for Permission {
    fn into_proto(self) -> pb::Permission {
        pb::Permission {
            configure: self.configure,
            write: self.write,
            read: self.read,
        }
    }
}

impl FromProto<pb::Permission> for Permission {
    fn from_proto(p: pb::Permission) -> Result<Self, DecodeError> {
        Ok(Permission {
            configure: p.configure,
            write: p.write,
            read: p.read,
        })
    }
}
