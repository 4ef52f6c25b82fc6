//! Tests of the queue machine: exact replies and effects per behaviour
//! (`scenarios`, `limits`, `priority`), argument parsing (`config`), the
//! state's image (`image`), and random command sequences checked against
//! invariants (`prop`).

mod config;
mod image;
mod limits;
mod model;
mod priority;
mod prop;
mod ready_model;
mod scenarios;

use super::*;

/// Payloads are short strings so that expected effects read like the test.
pub(super) type M = &'static str;
pub(super) type Out = (Reply<M>, Vec<Effect<M>>);

pub(super) fn run(state: &mut QueueState<M>, now_ms: u64, cmd: Command<M>) -> Out {
    apply(&Meta { index: 0, now_ms }, cmd, state)
}

pub(super) fn key(owner: u64, tag: &str) -> ConsumerKey {
    ConsumerKey::new(OwnerId(owner), tag)
}

pub(super) fn enqueue(msg: M) -> Command<M> {
    Command::Enqueue {
        msg,
        size: msg.len() as u64,
        expiration_ms: None,
        priority: 0,
    }
}

pub(super) fn subscribe(owner: u64, tag: &str, prefetch: u32) -> Command<M> {
    Command::Subscribe {
        consumer: key(owner, tag),
        prefetch,
        no_ack: false,
        exclusive: false,
    }
}

pub(super) fn deliver(
    owner: u64,
    tag: &str,
    msg_id: MsgId,
    msg: M,
    delivery_count: u32,
) -> Effect<M> {
    Effect::Deliver {
        consumer: key(owner, tag),
        msg_id,
        msg,
        redelivered: delivery_count > 0,
        delivery_count,
    }
}

pub(super) fn dead(msg: M, reason: DeadLetterReason) -> Effect<M> {
    Effect::DeadLetter { msg, reason }
}

pub(super) fn settle(owner: u64, msg_ids: &[MsgId]) -> Command<M> {
    Command::Settle {
        owner: OwnerId(owner),
        msg_ids: msg_ids.to_vec(),
    }
}

pub(super) fn ret(owner: u64, msg_ids: &[MsgId]) -> Command<M> {
    Command::Return {
        owner: OwnerId(owner),
        msg_ids: msg_ids.to_vec(),
    }
}

pub(super) fn get(owner: u64, no_ack: bool) -> Command<M> {
    Command::Get {
        owner: OwnerId(owner),
        no_ack,
    }
}

pub(super) fn ok() -> Out {
    (Reply::Ok, vec![])
}

pub(super) fn enqueued(msg_id: MsgId, fx: Vec<Effect<M>>) -> Out {
    (Reply::Enqueued { msg_id }, fx)
}

/// A config that dead-letters, so dropped messages are visible as effects.
pub(super) fn dlx() -> QueueConfig {
    QueueConfig {
        dead_letter: true,
        ..QueueConfig::default()
    }
}
