//! The queue machine: all queue semantics as one pure, deterministic
//! function, in the shape of RabbitMQ's `rabbit_fifo`.
//!
//! ```text
//!   driver ──(Meta, Command)──▶ apply(&mut QueueState) ──▶ (Reply, Vec<Effect>)
//!                                                            │
//!   in-memory driver: applies and executes at once           │ Deliver / DeadLetter /
//!   Raft driver: every replica applies, the leader executes ◀┘ ConsumerActivated
//! ```
//!
//! Two drivers run it: an in-memory one for transient queues and a Raft one
//! where every replica applies the same command log. Hence: no clock (time is
//! `Meta::now_ms`), no randomness, only ordered collections, and dispatch
//! (which consumer gets which message) is decided inside `apply`, so a new
//! leader knows exactly what is out with whom. The payload type `M` is opaque:
//! `Arc<Message>` in memory, a log index under Raft.
//!
//! Semantics worth knowing (RabbitMQ's unless said otherwise):
//! - Dispatch is round-robin over consumers with capacity, in subscription
//!   order; under single-active-consumer only the oldest consumer receives.
//! - With `x-max-priority`, higher priorities go first (one sub-queue per
//!   priority, as `rabbit_priority_queue`); the rules below hold within
//!   each priority. Without it the `priority` property is ignored.
//! - Requeued messages go out before never-delivered ones, in id order, with
//!   `redelivered`; `delivery_count` counts requeues (consumer gone included),
//!   and a message requeued more than `delivery_limit` times is dropped.
//! - Only heads expire (Tick, dispatch and get remove expired heads).
//! - Drop-head overflow drops the head of the delivery order, i.e. under
//!   priorities the oldest message of the highest priority (RabbitMQ too).
//! - Length limits count ready messages only; purge removes ready ones only.
//! - Cancelling a consumer leaves its unacked messages with its channel.
//!
//! Files, one operation each: `types` (commands, replies, effects), `config`
//! (x-arguments), `error`, `state` (the state and its accessors), `ready`
//! (ready messages by priority, in delivery order), `enqueue`
//! (length limits, purge), `checkout` (consumers, get, dispatch), `settle`
//! (ack, requeue, discard, owner down), `expiry` (TTL), `policy` (runtime
//! changes of the settings), `image` (the state as plain data, for
//! snapshots).

mod checkout;
mod config;
mod enqueue;
mod error;
mod expiry;
mod image;
mod policy;
mod ready;
mod settle;
mod state;
mod types;

#[cfg(test)]
mod tests;

pub use config::{Overflow, QueueConfig};
pub use error::{QueueError, resource_name};
pub use image::{CheckedOutMsg, ConsumerImage, MsgImage, QueueImage, ReadyMsg};
pub use state::{Limit, QueueState};
pub use types::{Command, ConsumerKey, DeadLetterReason, Effect, Meta, MsgId, OwnerId, Reply};

/// Applies one command. A command answered with `Reply::Error` changes
/// nothing and emits nothing.
pub fn apply<M: Clone>(
    meta: &Meta,
    cmd: Command<M>,
    state: &mut QueueState<M>,
) -> (Reply<M>, Vec<Effect<M>>) {
    let mut fx = Vec::new();
    let reply = match cmd {
        Command::Enqueue {
            msg,
            size,
            expiration_ms,
            priority,
        } => state.enqueue(meta, msg, size, expiration_ms, priority, &mut fx),
        Command::Subscribe {
            consumer,
            prefetch,
            no_ack,
            exclusive,
        } => state.subscribe(
            meta,
            consumer,
            Limit::Prefetch(prefetch),
            no_ack,
            exclusive,
            &mut fx,
        ),
        Command::SubscribeCredit {
            consumer,
            no_ack,
            exclusive,
        } => state.subscribe(meta, consumer, Limit::Credit(0), no_ack, exclusive, &mut fx),
        Command::Cancel { consumer } => state.cancel(meta, &consumer, &mut fx),
        Command::Credit { consumer, credit } => state.credit(meta, &consumer, credit, &mut fx),
        Command::Get { owner, no_ack } => state.get(meta, owner, no_ack, &mut fx),
        Command::Settle { owner, msg_ids } => state.settle(meta, owner, &msg_ids, &mut fx),
        Command::Return { owner, msg_ids } => state.return_msgs(meta, owner, &msg_ids, &mut fx),
        Command::Discard { owner, msg_ids } => state.discard(meta, owner, &msg_ids, &mut fx),
        Command::OwnerDown { owner } => state.owner_down(meta, owner, &mut fx),
        Command::Purge => state.purge(),
        Command::Tick => state.tick(meta.now_ms, &mut fx),
        Command::UpdateConfig { config } => state.update_config(meta, config, &mut fx),
    };
    (reply, fx)
}
