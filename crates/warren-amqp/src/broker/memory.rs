//! The memory alarm: when the bytes held by queues pass the high watermark,
//! publishing connections are blocked (connection.blocked, and the server
//! stops reading from them) until consumers bring it back down, as RabbitMQ
//! does with its `vm_memory_high_watermark`. The disk alarm (free space of
//! the data directory below `disk_free_limit`, set from outside by whoever
//! watches the disk) blocks them the same way.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use tokio::sync::watch;

/// Message bytes held by all queues, and the alarm raised above the watermark.
pub struct MemoryAlarm {
    used: AtomicI64,
    watermark: i64,
    /// Queues hold more than the watermark.
    memory_on: AtomicBool,
    /// The data directory's disk is (nearly) full.
    disk_on: AtomicBool,
    alarm: watch::Sender<bool>,
}

impl MemoryAlarm {
    /// `watermark` 0 disables the alarm.
    pub fn new(watermark: u64) -> Self {
        MemoryAlarm {
            used: AtomicI64::new(0),
            watermark: i64::try_from(watermark).unwrap_or(i64::MAX),
            memory_on: AtomicBool::new(false),
            disk_on: AtomicBool::new(false),
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
        if self.memory_on.swap(on, Ordering::AcqRel) != on {
            if on {
                tracing::warn!(
                    used,
                    watermark = self.watermark,
                    "memory alarm: blocking publishers"
                );
            } else {
                tracing::info!(used, "memory alarm cleared");
            }
        }
        self.publish();
    }

    /// Raises or clears the disk alarm (`free` bytes left, for the log).
    pub fn set_disk_alarm(&self, on: bool, free: u64) {
        if self.disk_on.swap(on, Ordering::AcqRel) != on {
            if on {
                tracing::warn!(
                    free,
                    "disk alarm: free disk space is below the limit, blocking publishers"
                );
            } else {
                tracing::info!(free, "disk alarm cleared");
            }
        }
        self.publish();
    }

    /// Tells the watchers whether any alarm is on.
    fn publish(&self) {
        let on = self.memory_on.load(Ordering::Acquire) || self.disk_on.load(Ordering::Acquire);
        self.alarm.send_if_modified(|state| {
            let changed = *state != on;
            *state = on;
            changed
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
