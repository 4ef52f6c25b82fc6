//! warren-amqp: the AMQP 0-9-1 frontend, and the single-node broker it drives.
//!
//! Depends on warren-codec (wire format) and warren-core (semantics) only; it
//! owns every task, socket and timer of the AMQP side.
//!
//! ```text
//!  TCP ─▶ connection task ──frames──▶ channel handlers ──▶ broker (meta + routing)
//!           ▲  one task per connection,                      │ publish/settle/consume
//!           │  owns its channels, batches socket writes       ▼
//!           └──── ConnEvent (deliver, confirm, cancel) ◀── queue actors (one task per
//!                                                           queue, each owning a pure
//!                                                           warren-core queue machine)
//! ```
//!
//! Ownership rules (kept here, in one place):
//! - A connection task owns its socket, its channels and all their state; nothing
//!   else touches them. Other tasks talk to it only through its unbounded
//!   `ConnEvent` channel, whose volume is bounded by consumer prefetch.
//! - A queue actor owns its `QueueState`; requests reach it through a bounded
//!   mailbox, so a publisher faster than the queue is slowed down (back-pressure)
//!   instead of growing memory.
//! - The broker's metadata sits behind one `RwLock` that is only held for
//!   synchronous work, never across `.await`.
//! - A queue actor never waits on a connection (it only does unbounded sends to
//!   it), and connections wait on queue mailboxes: no cycle, no deadlock.

pub mod broker;
pub mod channel;
pub mod config;
pub mod connection;
pub mod convert;
pub mod error;
pub mod server;

pub use broker::Broker;
pub use config::ServerConfig;
pub use server::serve;
