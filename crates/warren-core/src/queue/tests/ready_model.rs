//! The property tests' own idea of the ready messages and their delivery
//! order, kept as one sorted set so it shares no code with `ready.rs`:
//! highest priority first, then requeued before never-delivered, then id.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::super::MsgId;

/// (priority level, never delivered?, id): requeued (`false`) sorts first.
type Key = (Reverse<u8>, bool, MsgId);

#[derive(Default)]
pub(super) struct ReadyModel {
    order: BTreeSet<Key>,
    /// Level and absolute expiry of every message ever enqueued.
    info: BTreeMap<MsgId, (u8, Option<u64>)>,
}

impl ReadyModel {
    pub(super) fn enqueued(&mut self, id: MsgId, level: u8, expiry: Option<u64>) {
        self.info.insert(id, (level, expiry));
        assert!(self.order.insert((Reverse(level), true, id)));
    }

    /// A checked-out message went back to the queue.
    pub(super) fn returned(&mut self, id: MsgId) {
        let level = self.info.get(&id).map_or(0, |i| i.0);
        assert!(self.order.insert((Reverse(level), false, id)));
    }

    pub(super) fn ids(&self) -> Vec<MsgId> {
        self.order.iter().map(|k| k.2).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn contains(&self, id: MsgId) -> bool {
        self.key(id).is_some()
    }

    /// Removes `id`, which must be the head of the delivery order; tells
    /// whether it had been requeued (i.e. goes out as redelivered).
    pub(super) fn take_head(&mut self, id: MsgId, what: &str) -> bool {
        let head = self.order.pop_first();
        assert_eq!(head.map(|k| k.2), Some(id), "{what} is not the head");
        head.is_some_and(|k| !k.1)
    }

    /// Removes an expired message, which must be one of the heads that
    /// expire (see `heads`) and be past its expiry.
    pub(super) fn take_expired(&mut self, id: MsgId, now_ms: u64) {
        assert!(self.heads().contains(&id), "expired {id} is not a head");
        let expiry = self.info.get(&id).and_then(|i| i.1);
        assert!(expiry.is_some_and(|t| t <= now_ms), "{id} expired early");
        self.take(id);
    }

    /// Removes `id` from wherever it is among the ready messages.
    pub(super) fn take(&mut self, id: MsgId) {
        let key = self.key(id);
        assert!(key.is_some_and(|k| self.order.remove(&k)), "{id} not ready");
    }

    pub(super) fn clear(&mut self) -> Vec<MsgId> {
        let ids = self.ids();
        self.order.clear();
        ids
    }

    /// The heads that may expire now: the first requeued and the first
    /// never-delivered message of the highest priority present.
    pub(super) fn heads(&self) -> Vec<MsgId> {
        let Some(&(level, _, _)) = self.order.first() else {
            return Vec::new();
        };
        let first = |fresh| {
            let from = (level, fresh, 0);
            let to = (level, fresh, MsgId::MAX);
            self.order.range(from..=to).next().map(|k| k.2)
        };
        [first(false), first(true)].into_iter().flatten().collect()
    }

    /// When the earliest of `heads` expires.
    pub(super) fn next_expiry(&self) -> Option<u64> {
        let expiry = |id: MsgId| self.info.get(&id).and_then(|i| i.1);
        self.heads().into_iter().filter_map(expiry).min()
    }

    fn key(&self, id: MsgId) -> Option<Key> {
        let level = Reverse(self.info.get(&id)?.0);
        [false, true]
            .into_iter()
            .map(|fresh| (level, fresh, id))
            .find(|k| self.order.contains(k))
    }
}
