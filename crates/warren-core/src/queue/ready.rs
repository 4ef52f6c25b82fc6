//! The ready messages of a queue, in delivery order, split by priority.
//!
//! Like RabbitMQ's `rabbit_priority_queue`, a priority queue is one
//! sub-queue per priority, drained highest first; a queue without
//! `x-max-priority` is the same structure with every message at level 0.
//! Within a level, requeued messages go before never-delivered ones, in id
//! order (where a classic queue puts them back at their old position).
//!
//! Only non-empty levels are kept, so finding the head is one B-tree step
//! over at most 256 levels, and push/pop stay O(log n).

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};

use super::state::Msg;
use super::types::MsgId;

/// The ready messages of one priority.
#[derive(Clone, Debug, PartialEq)]
struct Level<M> {
    /// Requeued messages, delivered first, in id order.
    returns: BTreeMap<MsgId, Msg<M>>,
    /// Never-delivered messages in arrival order.
    fresh: VecDeque<Msg<M>>,
}

impl<M> Level<M> {
    fn new() -> Self {
        Level {
            returns: BTreeMap::new(),
            fresh: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.returns.is_empty() && self.fresh.is_empty()
    }

    fn pop_head(&mut self) -> Option<Msg<M>> {
        match self.returns.pop_first() {
            Some((_, m)) => Some(m),
            None => self.fresh.pop_front(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Msg<M>> {
        self.returns.values().chain(self.fresh.iter())
    }

    /// Removes expired messages from the head of the requeued ones and from
    /// the head of the fresh ones (each is a FIFO of its own).
    fn expire_heads(&mut self, now_ms: u64, out: &mut Vec<Msg<M>>) {
        while let Some(entry) = self.returns.first_entry() {
            if !entry.get().is_expired(now_ms) {
                break;
            }
            out.push(entry.remove());
        }
        while self.fresh.front().is_some_and(|m| m.is_expired(now_ms)) {
            let Some(msg) = self.fresh.pop_front() else {
                break;
            };
            out.push(msg);
        }
    }
}

/// All ready messages, with their count and bytes kept as counters so that
/// length limits cost nothing per check.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Ready<M> {
    /// Keyed highest priority first, so iteration is delivery order.
    levels: BTreeMap<Reverse<u8>, Level<M>>,
    len: u64,
    bytes: u64,
}

impl<M> Ready<M> {
    pub(super) fn new() -> Self {
        Ready {
            levels: BTreeMap::new(),
            len: 0,
            bytes: 0,
        }
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends a never-delivered message at the tail of its priority.
    pub(super) fn push_fresh(&mut self, msg: Msg<M>) {
        self.count_in(&msg);
        self.level(msg.priority).fresh.push_back(msg);
    }

    /// Puts a requeued message back among the requeued ones of its priority.
    pub(super) fn push_return(&mut self, msg: Msg<M>) {
        self.count_in(&msg);
        self.level(msg.priority).returns.insert(msg.id, msg);
    }

    /// Removes the next message to deliver: the highest priority's
    /// requeued head, else its fresh head.
    pub(super) fn pop_head(&mut self) -> Option<Msg<M>> {
        let mut top = self.levels.first_entry()?;
        let msg = top.get_mut().pop_head();
        if top.get().is_empty() {
            top.remove();
        }
        let msg = msg?;
        self.count_out(&msg);
        Some(msg)
    }

    /// Removes expired heads. As in RabbitMQ (`dropwhile` runs the
    /// sub-queues highest first and stops at the first that keeps a
    /// message), a lower priority is looked at only once every higher one
    /// has emptied: an expired low-priority message waits behind a live
    /// high-priority one.
    pub(super) fn expire_heads(&mut self, now_ms: u64) -> Vec<Msg<M>> {
        let mut out = Vec::new();
        while let Some(mut top) = self.levels.first_entry() {
            top.get_mut().expire_heads(now_ms, &mut out);
            if !top.get().is_empty() {
                break;
            }
            top.remove();
        }
        for msg in &out {
            self.count_out(msg);
        }
        out
    }

    /// Earliest expiry among the heads `expire_heads` looks at first.
    pub(super) fn next_expiry(&self) -> Option<u64> {
        let top = self.levels.values().next()?;
        let ret = top.returns.values().next().and_then(|m| m.expiry);
        let fresh = top.fresh.front().and_then(|m| m.expiry);
        match (ret, fresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every ready message, in delivery order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Msg<M>> {
        self.levels.values().flat_map(Level::iter)
    }

    /// Every ready message in delivery order, each with whether it is among
    /// the requeued ones of its level (what `push_return` put back).
    pub(super) fn iter_requeued(&self) -> impl Iterator<Item = (&Msg<M>, bool)> {
        self.levels.values().flat_map(|l| {
            let returns = l.returns.values().map(|m| (m, true));
            returns.chain(l.fresh.iter().map(|m| (m, false)))
        })
    }

    pub(super) fn clear(&mut self) {
        self.levels.clear();
        self.len = 0;
        self.bytes = 0;
    }

    fn level(&mut self, priority: u8) -> &mut Level<M> {
        self.levels
            .entry(Reverse(priority))
            .or_insert_with(Level::new)
    }

    fn count_in(&mut self, msg: &Msg<M>) {
        self.len += 1;
        self.bytes += msg.size;
    }

    fn count_out(&mut self, msg: &Msg<M>) {
        self.len -= 1;
        self.bytes -= msg.size;
    }
}
