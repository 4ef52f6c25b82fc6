//! warren: the binary's library half, so tests can run a broker in-process.
//!
//! - [`serve`]: `warren serve` — binds the listeners and runs the broker.
//! - [`perf`]: `warren perf` — the load generator.
//! - [`ctl`]: `warren ctl` — administers a running cluster.

pub mod ctl;
pub mod durable;
pub mod perf;
pub mod serve;
