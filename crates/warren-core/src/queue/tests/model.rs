//! The model the property tests check the machine against: it learns where
//! each message is only from replies and effects, and asserts after every
//! command that the machine's state agrees (see `prop` for the invariants).

use std::collections::{BTreeMap, BTreeSet};

use super::super::*;
use super::prop::Op;
use super::ready_model::ReadyModel;

pub(super) type P = u64;

pub(super) const OWNERS: u64 = 3;

pub(super) type Log = Vec<(Meta, Command<P>, (Reply<P>, Vec<Effect<P>>))>;

pub(super) fn key(owner: u64, tag: u8) -> ConsumerKey {
    ConsumerKey::new(OwnerId(owner), format!("t{tag}"))
}

pub(super) fn size_of(p: P) -> u64 {
    p % 7 + 1
}

#[derive(Clone, Debug)]
struct ModelConsumer {
    seq: u64,
    prefetch: Option<u32>,
    no_ack: bool,
    credit: u32,
}

impl ModelConsumer {
    fn can_take(&self, held: usize) -> bool {
        match self.prefetch {
            None => self.credit > 0,
            Some(_) if self.no_ack => true,
            Some(0) => true,
            Some(n) => held < n as usize,
        }
    }
}

/// What the machine told us, message by message.
#[derive(Default)]
pub(super) struct Model {
    now: u64,
    index: u64,
    next_payload: P,
    sac: bool,
    /// The settings that decide a new message's level and expiry.
    max_priority: Option<u8>,
    ttl: Option<u64>,
    /// Ready messages in the order they must go out.
    ready: ReadyModel,
    /// Whether the last command was a Tick (then no head is expired).
    ticked: bool,
    id_of: BTreeMap<P, MsgId>,
    payload_of: BTreeMap<MsgId, P>,
    settled: BTreeSet<MsgId>,
    dropped: BTreeSet<MsgId>,
    /// Checked out: owner and, for consumer deliveries, (key, seq).
    out: BTreeMap<MsgId, (OwnerId, Option<(ConsumerKey, u64)>)>,
    subscribed: BTreeMap<ConsumerKey, ModelConsumer>,
    next_seq: u64,
}

impl Model {
    pub(super) fn new(config: &QueueConfig) -> Model {
        Model {
            sac: config.single_active_consumer,
            max_priority: config.max_priority,
            ttl: config.message_ttl_ms,
            ..Model::default()
        }
    }

    /// Turns a generated step into a command, given the current state.
    pub(super) fn command(&mut self, op: &Op, state: &QueueState<P>) -> Option<Command<P>> {
        let cmd = match *op {
            Op::Advance { ms } => {
                self.now += ms;
                return None;
            }
            Op::Enqueue { exp, priority } => {
                let p = self.next_payload;
                self.next_payload += 1;
                Command::Enqueue {
                    msg: p,
                    size: size_of(p),
                    expiration_ms: exp,
                    priority,
                }
            }
            Op::Subscribe {
                owner,
                tag,
                prefetch,
                no_ack,
                exclusive,
            } => Command::Subscribe {
                consumer: key(owner, tag),
                prefetch,
                no_ack,
                exclusive,
            },
            Op::SubscribeCredit { owner, tag, no_ack } => Command::SubscribeCredit {
                consumer: key(owner, tag),
                no_ack,
                exclusive: false,
            },
            Op::Cancel { owner, tag } => Command::Cancel {
                consumer: key(owner, tag),
            },
            Op::Credit { owner, tag, n } => Command::Credit {
                consumer: key(owner, tag),
                credit: n,
            },
            Op::Get { owner, no_ack } => Command::Get {
                owner: OwnerId(owner),
                no_ack,
            },
            Op::Settle {
                kind,
                owner,
                ref picks,
                bogus,
            } => settle_command(kind, OwnerId(owner), picks, bogus, state),
            Op::OwnerDown { owner } => Command::OwnerDown {
                owner: OwnerId(owner),
            },
            Op::Purge => Command::Purge,
            Op::Tick => Command::Tick,
            Op::UpdateConfig { ref config } => {
                self.sac = config.single_active_consumer;
                self.max_priority = config.max_priority;
                self.ttl = config.message_ttl_ms;
                Command::UpdateConfig {
                    config: config.clone(),
                }
            }
        };
        Some(cmd)
    }

    pub(super) fn step(&mut self, cmd: Command<P>, state: &mut QueueState<P>, log: &mut Log) {
        self.index += 1;
        let meta = Meta {
            index: self.index,
            now_ms: self.now,
        };
        let before = state.clone();
        let (reply, fx) = apply(&meta, cmd.clone(), state);
        if let Reply::Error(_) = reply {
            assert!(fx.is_empty(), "a failed command emitted {fx:?}");
            assert_eq!(*state, before, "a failed command changed the state");
        } else if let Command::Get { .. } = cmd {
            // A get drops expired heads before it takes one.
            for effect in &fx {
                self.observe_effect(effect);
            }
            self.observe_command(&cmd, &reply);
        } else {
            self.observe_command(&cmd, &reply);
            for effect in &fx {
                self.observe_effect(effect);
            }
        }
        self.ticked = matches!(cmd, Command::Tick);
        self.check(state);
        log.push((meta, cmd, (reply, fx)));
    }

    fn observe_command(&mut self, cmd: &Command<P>, reply: &Reply<P>) {
        match (cmd, reply) {
            (Command::Enqueue { msg, .. }, Reply::Enqueued { msg_id }) => {
                assert!(
                    self.payload_of.keys().all(|id| id < msg_id),
                    "ids must increase"
                );
                self.id_of.insert(*msg, *msg_id);
                self.payload_of.insert(*msg_id, *msg);
                self.enqueued(cmd, *msg_id);
            }
            (
                Command::Subscribe {
                    consumer,
                    prefetch,
                    no_ack,
                    ..
                },
                Reply::Ok,
            ) => {
                self.add_consumer(consumer, Some(*prefetch), *no_ack);
            }
            (
                Command::SubscribeCredit {
                    consumer, no_ack, ..
                },
                Reply::Ok,
            ) => self.add_consumer(consumer, None, *no_ack),
            (Command::Cancel { consumer }, _) => {
                self.subscribed.remove(consumer);
            }
            (Command::Credit { consumer, credit }, Reply::Ok) => {
                let c = self
                    .subscribed
                    .get_mut(consumer)
                    .expect("credit for a known consumer");
                c.credit += credit;
            }
            (Command::Get { owner, no_ack }, Reply::GetOk { .. }) => {
                self.got(*owner, *no_ack, reply);
            }
            (Command::Settle { msg_ids, .. }, Reply::Ok) => {
                for id in msg_ids {
                    assert!(self.out.remove(id).is_some());
                    assert!(self.settled.insert(*id));
                }
            }
            (Command::Return { msg_ids, .. }, Reply::Ok) => {
                for id in msg_ids {
                    assert!(self.out.remove(id).is_some());
                    self.ready.returned(*id);
                }
            }
            (Command::Discard { msg_ids, .. }, Reply::Ok) => {
                for id in msg_ids {
                    assert!(self.out.remove(id).is_some());
                }
            }
            (Command::OwnerDown { owner }, _) => self.owner_down(*owner),
            (Command::Purge, Reply::Purged { count }) => {
                assert_eq!(*count, self.ready.len() as u64);
                self.dropped.extend(self.ready.clear());
            }
            (Command::Tick | Command::UpdateConfig { .. }, Reply::Ok)
            | (Command::Enqueue { .. }, Reply::Rejected) => {}
            (Command::Get { .. }, Reply::GetEmpty) => {}
            (cmd, reply) => panic!("unexpected reply {reply:?} to {cmd:?}"),
        }
    }

    /// basic.get took the head of the delivery order.
    fn got(&mut self, owner: OwnerId, no_ack: bool, reply: &Reply<P>) {
        let Reply::GetOk {
            msg_id,
            msg,
            redelivered,
            message_count,
        } = reply
        else {
            return;
        };
        assert_eq!(self.payload_of.get(msg_id), Some(msg));
        let requeued = self.ready.take_head(*msg_id, "get");
        assert_eq!(*redelivered, requeued);
        assert_eq!(*message_count, self.ready.len() as u64);
        if no_ack {
            assert!(self.settled.insert(*msg_id));
        } else {
            assert!(self.out.insert(*msg_id, (owner, None)).is_none());
        }
    }

    /// The owner's consumers are gone and what it held is requeued.
    fn owner_down(&mut self, owner: OwnerId) {
        self.subscribed.retain(|k, _| k.owner != owner);
        let held: Vec<MsgId> = self
            .out
            .iter()
            .filter(|(_, (o, _))| *o == owner)
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            self.out.remove(&id);
            self.ready.returned(id);
        }
    }

    /// A new message is ready at its level: the priority property capped
    /// at the max, 0 without priorities.
    fn enqueued(&mut self, cmd: &Command<P>, id: MsgId) {
        let Command::Enqueue {
            expiration_ms,
            priority,
            ..
        } = cmd
        else {
            return;
        };
        let level = self.max_priority.map_or(0, |max| (*priority).min(max));
        let ttl = match (self.ttl, *expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ready.enqueued(id, level, ttl.map(|t| self.now + t));
    }

    fn add_consumer(&mut self, key: &ConsumerKey, prefetch: Option<u32>, no_ack: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let c = ModelConsumer {
            seq,
            prefetch,
            no_ack,
            credit: 0,
        };
        assert!(self.subscribed.insert(key.clone(), c).is_none());
    }

    fn oldest(&self) -> Option<&ConsumerKey> {
        self.subscribed
            .iter()
            .min_by_key(|(_, c)| c.seq)
            .map(|(k, _)| k)
    }

    fn observe_effect(&mut self, effect: &Effect<P>) {
        match effect {
            Effect::Deliver {
                consumer,
                msg_id,
                msg,
                redelivered,
                delivery_count,
            } => {
                assert_eq!(self.payload_of.get(msg_id), Some(msg));
                assert_eq!(*redelivered, *delivery_count > 0);
                let requeued = self.ready.take_head(*msg_id, "delivery");
                assert_eq!(*redelivered, requeued);
                if self.sac {
                    assert_eq!(
                        self.oldest(),
                        Some(consumer),
                        "SAC delivered to a non-active consumer"
                    );
                }
                let c = self
                    .subscribed
                    .get_mut(consumer)
                    .expect("delivery to an unsubscribed consumer");
                if c.prefetch.is_none() {
                    assert!(c.credit > 0, "credit-mode delivery without credit");
                    c.credit -= 1;
                }
                if c.no_ack {
                    assert!(self.settled.insert(*msg_id));
                } else {
                    let holder = Some((consumer.clone(), c.seq));
                    assert!(self.out.insert(*msg_id, (consumer.owner, holder)).is_none());
                }
            }
            Effect::DeadLetter { msg, reason } => {
                // A payload without an id was refused at publish (reject-publish-dlx).
                if let Some(&id) = self.id_of.get(msg) {
                    self.dead_lettered(id, *reason);
                }
            }
            Effect::ConsumerActivated { consumer } => {
                assert!(self.sac);
                assert_eq!(self.oldest(), Some(consumer));
            }
        }
    }
}

impl Model {
    /// Where a dead-lettered message may come from, by reason.
    fn dead_lettered(&mut self, id: MsgId, reason: DeadLetterReason) {
        match reason {
            DeadLetterReason::Expired => self.ready.take_expired(id, self.now),
            // Drop-head takes the head of the delivery order.
            DeadLetterReason::MaxLen => {
                self.ready.take_head(id, "drop-head victim");
            }
            // Just returned once too often.
            DeadLetterReason::DeliveryLimit => self.ready.take(id),
            DeadLetterReason::Rejected => assert!(!self.ready.contains(id)),
        }
        assert!(self.dropped.insert(id), "dropped twice");
    }

    fn held_by(&self, key: &ConsumerKey, seq: u64) -> usize {
        let mine = |h: &&(OwnerId, Option<(ConsumerKey, u64)>)| {
            h.1.as_ref().is_some_and(|(k, s)| k == key && *s == seq)
        };
        self.out.values().filter(mine).count()
    }

    fn check(&self, state: &QueueState<P>) {
        let ready = state.ready_ids();
        let ready_set: BTreeSet<MsgId> = ready.iter().copied().collect();
        assert_eq!(ready_set.len(), ready.len(), "a message is ready twice");
        assert_eq!(ready, self.ready.ids(), "ready messages or their order");
        assert_eq!(state.message_count(), ready.len() as u64);
        assert_eq!(state.next_expiry(), self.ready.next_expiry());
        if self.ticked {
            let due = state.next_expiry().is_some_and(|t| t <= self.now);
            assert!(!due, "a Tick left an expired head");
        }
        for owner in 1..=OWNERS {
            let owner = OwnerId(owner);
            let model: Vec<MsgId> = self
                .out
                .iter()
                .filter(|(_, (o, _))| *o == owner)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(
                state.checked_out_ids(owner),
                model,
                "checked out to {owner:?}"
            );
        }
        assert_eq!(state.unacked_count(), self.out.len() as u64);
        for id in self.payload_of.keys() {
            let places = [
                ready_set.contains(id),
                self.out.contains_key(id),
                self.settled.contains(id),
                self.dropped.contains(id),
            ];
            assert_eq!(
                places.iter().filter(|p| **p).count(),
                1,
                "message {id} is in {places:?}"
            );
        }
        let size = |id: &MsgId| self.payload_of.get(id).map_or(0, |p| size_of(*p));
        assert_eq!(state.ready_bytes(), ready.iter().map(size).sum::<u64>());
        assert_eq!(
            state.total_bytes(),
            state.ready_bytes() + self.out.keys().map(size).sum::<u64>()
        );
        assert_eq!(state.consumer_count() as usize, self.subscribed.len());
        let mut live: Vec<P> = state.payloads().copied().collect();
        live.sort_unstable();
        let payload = |id: &MsgId| self.payload_of.get(id).copied();
        let mut expected: Vec<P> = ready
            .iter()
            .chain(self.out.keys())
            .filter_map(payload)
            .collect();
        expected.sort_unstable();
        assert_eq!(live, expected, "live payloads");
        self.check_consumers(state, ready.is_empty());
    }

    fn check_consumers(&self, state: &QueueState<P>, nothing_ready: bool) {
        for (key, c) in &self.subscribed {
            let held = self.held_by(key, c.seq);
            if let (Some(n), false) = (c.prefetch, c.no_ack) {
                assert!(
                    n == 0 || held <= n as usize,
                    "{key:?} holds {held} over prefetch {n}"
                );
            }
            if !c.no_ack {
                assert_eq!(state.consumer_unacked(key), Some(held as u32));
            }
            let eligible = !self.sac || self.oldest() == Some(key);
            assert!(
                nothing_ready || !eligible || !c.can_take(held),
                "{key:?} could take a ready message"
            );
        }
    }
}

/// Settle, return or discard (by `kind`) some of what `owner` holds, picked
/// by index, plus an id nobody holds when `bogus`.
fn settle_command(
    kind: u8,
    owner: OwnerId,
    picks: &[usize],
    bogus: bool,
    state: &QueueState<P>,
) -> Command<P> {
    let held = state.checked_out_ids(owner);
    let mut seen = BTreeSet::new();
    let mut msg_ids: Vec<MsgId> = Vec::new();
    for i in picks.iter().filter(|_| !held.is_empty()) {
        let id = held[i % held.len()];
        if seen.insert(id) {
            msg_ids.push(id);
        }
    }
    if bogus {
        msg_ids.push(1_000_000);
    }
    match kind {
        0 => Command::Settle { owner, msg_ids },
        1 => Command::Return { owner, msg_ids },
        _ => Command::Discard { owner, msg_ids },
    }
}
