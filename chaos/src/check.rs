//! One checker per invariant of the workload's history. Each returns a
//! verdict with the evidence (a few examples) when it fails.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::workload::{History, MsgKey};

#[derive(Clone, Debug)]
pub struct Verdict {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Verdict {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Verdict {
        Verdict {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Verdict {
        Verdict {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What the history adds up to (the result table's numbers).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Publish attempts sent (a message published again counts again).
    pub attempts: usize,
    pub confirmed: usize,
    pub nacked: u64,
    /// Distinct messages delivered.
    pub delivered: usize,
    pub lost: usize,
    /// Deliveries beyond the first of each message (allowed: at least once).
    pub duplicated: usize,
    pub phantom: usize,
    pub out_of_order: usize,
    pub reconnects: u64,
}

fn examples<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> String {
    let shown: Vec<String> = items
        .into_iter()
        .take(8)
        .map(|i| format!("{i:?}"))
        .collect();
    shown.join(", ")
}

/// Runs the history checkers.
pub fn history(h: &History) -> (Counts, Vec<Verdict>) {
    let mut counts = Counts {
        attempts: h.published.len(),
        confirmed: h.confirmed.len(),
        nacked: h.nacked,
        reconnects: h.publisher_reconnects + h.consumer_reconnects,
        ..Counts::default()
    };
    let mut verdicts = Vec::new();

    let all: Vec<_> = h.deliveries.iter().flatten().collect();
    let delivered: HashSet<MsgKey> = all.iter().map(|d| (d.publisher, d.msg)).collect();
    counts.delivered = delivered.len();
    counts.duplicated = all.len() - delivered.len();

    // Every confirmed message is delivered at least once.
    let mut lost: Vec<&MsgKey> = h
        .confirmed
        .keys()
        .filter(|k| !delivered.contains(k))
        .collect();
    lost.sort_unstable();
    counts.lost = lost.len();
    verdicts.push(if lost.is_empty() {
        Verdict::pass(
            "no confirmed message lost",
            format!("{} confirmed", counts.confirmed),
        )
    } else {
        Verdict::fail(
            "no confirmed message lost",
            format!(
                "{} lost (publisher, message): {}",
                lost.len(),
                examples(lost)
            ),
        )
    });

    // Nothing is delivered that was never published.
    let phantom: Vec<_> = all
        .iter()
        .filter(|d| !h.published.contains(&(d.publisher, d.msg, d.attempt)))
        .map(|d| (d.publisher, d.msg, d.attempt))
        .collect();
    counts.phantom = phantom.len() + h.garbage.len();
    verdicts.push(if counts.phantom == 0 {
        Verdict::pass("nothing delivered that was never published", "")
    } else {
        Verdict::fail(
            "nothing delivered that was never published",
            format!(
                "{} unknown attempts: {}; {} foreign bodies: {}",
                phantom.len(),
                examples(&phantom),
                h.garbage.len(),
                examples(&h.garbage)
            ),
        )
    });

    // FIFO: a queue's single consumer gets one publisher's confirmed
    // messages in the order they were published. Only first deliveries
    // count (a redelivery comes back out of order by design), and only
    // attempts that were confirmed (an unconfirmed attempt may have been
    // enqueued later than a newer confirmed one, and a nacked one is
    // published again after newer ones).
    let mut violations = Vec::new();
    for (q, deliveries) in h.deliveries.iter().enumerate() {
        let mut last: HashMap<usize, u64> = HashMap::new();
        let mut seen: HashSet<MsgKey> = HashSet::new();
        for d in deliveries {
            let key = (d.publisher, d.msg);
            if d.redelivered || h.confirmed.get(&key) != Some(&d.attempt) || !seen.insert(key) {
                continue;
            }
            let prev = last.entry(d.publisher).or_insert(d.attempt);
            if d.attempt < *prev {
                violations.push((q, d.publisher, *prev, d.attempt));
            }
            *prev = (*prev).max(d.attempt);
        }
    }
    counts.out_of_order = violations.len();
    verdicts.push(if violations.is_empty() {
        Verdict::pass("per-queue FIFO for its single consumer", "")
    } else {
        Verdict::fail(
            "per-queue FIFO for its single consumer",
            format!(
                "{} out of order (queue, publisher, after attempt, got attempt): {}",
                violations.len(),
                examples(&violations)
            ),
        )
    });
    (counts, verdicts)
}

/// How long after `fault` every publisher had a confirm again (`None`
/// when one never did). Publishers with no confirm at all are left out.
pub fn recovery_after(h: &History, fault: Instant) -> Option<Duration> {
    let mut worst = Duration::ZERO;
    for times in h.confirm_times.iter().filter(|t| !t.is_empty()) {
        let i = times.partition_point(|t| *t <= fault);
        let next = times.get(i)?;
        worst = worst.max(next.duration_since(fault));
    }
    Some(worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Delivered;

    fn delivered(publisher: usize, msg: u64, attempt: u64, redelivered: bool) -> Delivered {
        Delivered {
            publisher,
            msg,
            attempt,
            redelivered,
        }
    }

    fn base() -> History {
        let mut h = History {
            deliveries: vec![Vec::new()],
            ..History::default()
        };
        for m in 0..4 {
            h.published.insert((0, m, m));
            h.confirmed.insert((0, m), m);
        }
        h
    }

    fn failed(verdicts: &[Verdict]) -> Vec<&'static str> {
        verdicts.iter().filter(|v| !v.ok).map(|v| v.name).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let mut h = base();
        h.deliveries[0] = (0..4).map(|m| delivered(0, m, m, false)).collect();
        let (counts, verdicts) = history(&h);
        assert!(failed(&verdicts).is_empty(), "{verdicts:?}");
        assert_eq!(
            (counts.delivered, counts.lost, counts.duplicated),
            (4, 0, 0)
        );
    }

    #[test]
    fn each_checker_catches_its_fault() {
        // Message 2 lost, an attempt nobody sent, 3 before 1.
        let mut h = base();
        h.deliveries[0] = vec![
            delivered(0, 0, 0, false),
            delivered(0, 3, 3, false),
            delivered(0, 1, 1, false),
            delivered(0, 9, 9, false),
        ];
        let (counts, verdicts) = history(&h);
        assert_eq!(
            failed(&verdicts),
            vec![
                "no confirmed message lost",
                "nothing delivered that was never published",
                "per-queue FIFO for its single consumer"
            ]
        );
        assert_eq!(
            (counts.lost, counts.phantom, counts.out_of_order),
            (1, 1, 1)
        );
    }

    #[test]
    fn redeliveries_and_republished_copies_are_not_disorder() {
        let mut h = base();
        // Attempt 4 republishes message 1 (its first attempt's confirm was
        // lost, so attempt 1 is not the confirmed one).
        h.published.insert((0, 1, 4));
        h.confirmed.insert((0, 1), 4);
        h.deliveries[0] = vec![
            delivered(0, 0, 0, false),
            delivered(0, 1, 1, false),
            delivered(0, 2, 2, false),
            delivered(0, 0, 0, true),
            delivered(0, 3, 3, false),
            delivered(0, 1, 4, false),
        ];
        let (counts, verdicts) = history(&h);
        assert!(failed(&verdicts).is_empty(), "{verdicts:?}");
        assert_eq!(counts.duplicated, 2);
    }

    #[test]
    fn recovery_is_the_slowest_publishers_next_confirm() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let h = History {
            confirm_times: vec![vec![at(0), at(100), at(900)], vec![at(50), at(400)], vec![]],
            ..History::default()
        };
        assert_eq!(recovery_after(&h, at(60)), Some(Duration::from_millis(340)));
        assert_eq!(recovery_after(&h, at(500)), None);
    }
}
