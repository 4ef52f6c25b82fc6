//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags,
//! 22 characters of URL-safe base64 from 128 random bits (as RabbitMQ).

use rand::RngCore;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random_suffix() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut s = String::with_capacity(22);
    for _ in 0..22 {
        s.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    s
}

/// A fresh server-named queue name.
pub fn queue_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

/// A fresh token for a direct reply-to address.
pub fn reply_token() -> String {
    random_suffix()
}

/// A fresh consumer tag.
pub fn consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix())
}
