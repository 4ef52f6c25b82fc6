//! The channel-wide prefetch limit (basic.qos with global=true).
//!
//! A channel's limit spans every queue its consumers read from, so no single
//! queue machine can enforce it. Consumers under a global limit subscribe in
//! the queue machine's credit mode, and the queue actor asks the channel's
//! [`Limiter`] for a permit each time it wants to grant one credit (only when
//! a ready message is there to use it). A permit is then held by the unacked
//! delivery and given back by the channel when the delivery is settled.
//! Queues refused a permit register as waiters and are woken on release.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use super::queue::{QueueHandle, QueueRequest};

/// Permits for one channel's global prefetch.
#[derive(Debug)]
pub struct Limiter {
    limit: AtomicU32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    used: u32,
    waiters: Vec<QueueHandle>,
}

impl Limiter {
    pub fn new(limit: u32) -> Self {
        Limiter {
            limit: AtomicU32::new(limit),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Changes the limit (a later basic.qos global=true); a raise wakes waiters.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
        self.wake();
    }

    /// Takes a permit, or registers `waiter` to hear when one frees up.
    pub fn try_acquire(&self, waiter: &QueueHandle) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut inner = self.inner.lock();
        if limit == 0 || inner.used < limit {
            inner.used += 1;
            return true;
        }
        if !inner.waiters.iter().any(|w| w.same(waiter)) {
            inner.waiters.push(waiter.clone());
        }
        false
    }

    /// Gives back `n` permits and wakes the queues waiting for one.
    pub fn release(&self, n: u32) {
        if n == 0 {
            return;
        }
        {
            let mut inner = self.inner.lock();
            inner.used = inner.used.saturating_sub(n);
        }
        self.wake();
    }

    fn wake(&self) {
        let waiters = std::mem::take(&mut self.inner.lock().waiters);
        for w in waiters {
            w.send_now(QueueRequest::CreditAvailable);
        }
    }

    /// Permits in use (for tests and stats).
    pub fn in_use(&self) -> u32 {
        self.inner.lock().used
    }
}
