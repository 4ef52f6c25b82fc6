//! The RocksDB keyspace. Every key starts with the 8-byte big-endian group id
//! (the prefix extractor's length), so one group's keys are contiguous and a
//! whole group is one key range. Indexes follow big-endian, so byte order is
//! index order. This layout is the on-disk format: change it only with a new
//! `FORMAT_VERSION` and a migration.

use crate::types::{GroupId, StorageError};

/// Raft log entries: group ‖ index → payload.
pub const CF_LOG: &str = "log";
/// Small per-group records: group ‖ meta key byte → value.
pub const CF_META: &str = "meta";
/// Current snapshot: group ‖ 0 → meta, group ‖ 1 → data (written in one batch).
pub const CF_SNAPSHOT: &str = "snapshot";
/// Out-of-log message bodies: group ‖ index → body.
pub const CF_BODY: &str = "body";
/// Every column family holding group data (the default CF holds only the format marker).
pub const GROUP_CFS: [&str; 4] = [CF_LOG, CF_META, CF_SNAPSHOT, CF_BODY];

/// Key in the default CF holding the format version byte.
pub const FORMAT_KEY: &[u8] = b"warren-storage-format";
pub const FORMAT_VERSION: u8 = 1;

pub const PREFIX_LEN: usize = 8;
pub const SNAPSHOT_META: u8 = 0;
pub const SNAPSHOT_DATA: u8 = 1;

/// group ‖ index, for the log and body CFs.
pub fn indexed(group: GroupId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// group ‖ tag, for the meta and snapshot CFs.
pub fn tagged(group: GroupId, tag: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k[8] = tag;
    k
}

/// The smallest key of a group.
pub fn group_start(group: GroupId) -> [u8; 8] {
    group.to_be_bytes()
}

/// An exclusive bound above every key of `group` and below every key of
/// `group + 1`: the group prefix followed by more 0xff bytes than any key has.
/// Works for `u64::MAX` too, where `group + 1` would overflow.
pub fn group_end(group: GroupId) -> [u8; 17] {
    let mut k = [0xffu8; 17];
    k[..8].copy_from_slice(&group.to_be_bytes());
    k
}

/// An exclusive bound just above `indexed(group, index)`: that key followed by
/// a zero byte. No real key sits between the two, and `index = u64::MAX` needs
/// no overflow handling.
pub fn indexed_after(group: GroupId, index: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..16].copy_from_slice(&indexed(group, index));
    k
}

/// The group of any stored key.
pub fn group_of(key: &[u8]) -> Result<GroupId, StorageError> {
    let prefix: [u8; 8] = key
        .get(..PREFIX_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| StorageError::Corrupt(format!("key of {} bytes has no group", key.len())))?;
    Ok(u64::from_be_bytes(prefix))
}

/// The index of a log or body key.
pub fn index_of(key: &[u8]) -> Result<u64, StorageError> {
    let tail: [u8; 8] = key
        .get(8..16)
        .filter(|_| key.len() == 16)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| StorageError::Corrupt(format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_order_as_documented() {
        for g in [0, 1, 255, u64::MAX - 1, u64::MAX] {
            let start = group_start(g);
            let end = group_end(g);
            for i in [0, 1, 256, u64::MAX] {
                let k = indexed(g, i);
                assert!(start.as_slice() <= k.as_slice() && k.as_slice() < end.as_slice());
                assert!(k.as_slice() < indexed_after(g, i).as_slice());
                if i < u64::MAX {
                    assert!(indexed_after(g, i).as_slice() < indexed(g, i + 1).as_slice());
                }
                assert_eq!((group_of(&k).ok(), index_of(&k).ok()), (Some(g), Some(i)));
            }
            let t = tagged(g, 0xff);
            assert!(start.as_slice() <= t.as_slice() && t.as_slice() < end.as_slice());
            if g < u64::MAX {
                assert!(end.as_slice() < group_start(g + 1).as_slice());
            }
        }
        assert!(index_of(&tagged(1, 1)).is_err());
        assert!(group_of(b"short").is_err());
    }
}
