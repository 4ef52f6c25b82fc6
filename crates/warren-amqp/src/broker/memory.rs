//! The memory alarm: when the bytes held by queues pass the high watermark,
//! publishing connections are blocked (connection.blocked, and the server
//! stops reading from them) until consumers bring it back down, as RabbitMQ
//! does with its `vm_memory_high_watermark`.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

/// Message bytes held by all queues, and the alarm raised above the watermark.
pub struct MemoryAlarm {
    used: AtomicI64,
    watermark: i64,
    alarm: watch::Sender<bool>,
}

impl MemoryAlarm {
    /// `watermark` 0 disables the alarm.
    pub fn new(watermark: u64) -> Self {
        MemoryAlarm {
            used: AtomicI64::new(0),
            watermark: i64::try_from(watermark).unwrap_or(i64::MAX),
            alarm: watch::channel(false).0,
        }
    }

    /// A queue's held bytes changed by `delta`.
    pub fn add(&self, delta: i64) {
        if delta == 0 || self.watermark == 0 {
            return;
        }
        let used = self.used.fetch_add(delta, Ordering::Relaxed) + delta;
        let on = used > self.watermark;
        self.alarm.send_if_modified(|state| {
            if *state != on {
                if on {
                    tracing::warn!(
                        used,
                        watermark = self.watermark,
                        "memory alarm: blocking publishers"
                    );
                } else {
                    tracing::info!(used, "memory alarm cleared");
                }
                *state = on;
                true
            } else {
                false
            }
        });
    }

    pub fn used(&self) -> i64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Watch the alarm (true while publishers must be blocked).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.alarm.subscribe()
    }
}
