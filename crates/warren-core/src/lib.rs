//! warren-core: broker semantics as deterministic state machines, with no I/O.
//!
//! What lives here is replicated (or will be): every replica applies the same
//! commands in the same order and must reach the same state and emit the same
//! effects. So this crate never depends on tokio, rocksdb, tonic or openraft,
//! never reads the clock (time arrives in [`queue::Meta`]), never draws random
//! numbers, and never lets `HashMap` iteration order reach an effect (see this
//! crate's `clippy.toml`).
//!
//! ```text
//!   frontend (warren-amqp) ──commands──▶ meta::MetaState::apply ──▶ Result<reply>
//!                          ──publish──▶ meta routing ──▶ queue names
//!                          ──commands──▶ queue::apply ──▶ (reply, effects)
//!                                                           │
//!                          ◀── driver executes effects ─────┘ (Deliver, DeadLetter…)
//! ```
//!
//! Modules:
//! - [`value`]: AMQP field values and tables as domain types (arguments, headers).
//! - [`message`]: a published message as the broker keeps it.
//! - [`queue`]: the queue machine (rabbit_fifo in shape).
//! - [`meta`]: vhosts, users, permissions, exchanges, queues, bindings, definitions.
//! - [`routing`]: the exchange-type matchers (direct, fanout, topic trie, headers).

pub mod message;
pub mod meta;
pub mod queue;
pub mod routing;
pub mod value;
