//! `--client native`: a minimal AMQP 0-9-1 client written for perf on top of
//! `warren-codec`, as a much cheaper alternative to lapin (which, measured against
//! Warren, used more CPU than the broker it was measuring).
//!
//! ```text
//!  Conn::open: protocol header ─► start/start-ok (PLAIN) ─► tune/tune-ok (heartbeat 0)
//!              ─► connection.open ─► channel.open(1)
//!
//!  Producer: encode N × template (stamp patched) into wbuf ─► one write ─► read confirms
//!  Consumer: one read ─► every complete frame: deliver/header/body ─► Stats ─► acks
//!            into wbuf ─► one write
//! ```
//!
//! It does only what perf needs: channel 1, PLAIN, no heartbeats, no TLS. It
//! takes the same plans, reports into the same [`Stats`](super::stats::Stats) with
//! the same counting rules, so summaries of the two engines compare directly; it
//! also declares and deletes the run's queue, so a native run opens no lapin
//! connection.

mod conn;
mod consumer;
mod frames;
mod producer;
mod topology;
mod uri;

pub use consumer::Consumer;
pub use producer::Producer;
pub use topology::Topology;

#[cfg(test)]
mod tests;
