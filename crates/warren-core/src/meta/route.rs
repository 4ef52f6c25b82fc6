//! Routing a publish through a vhost's exchanges to queue names.
//!
//! Follows RabbitMQ's `rabbit_exchange:route/2`: a work list of exchanges
//! starting at the published-to one; each exchange's own bindings give
//! queues and further exchanges (each exchange visited once, so cycles end);
//! an exchange whose bindings selected nothing at all hands the message to
//! its `alternate-exchange`, if that exists. The result is sorted and
//! deduplicated. The default exchange routes to the queue named by the
//! routing key, if it exists.

use crate::value::Table;

use super::error::{MetaError, rs};
use super::state::MetaState;
use super::types::Destination;

impl MetaState {
    /// Appends the names of the queues a message goes to, sorted and without
    /// duplicates (among the appended ones). 404 if the exchange is missing.
    pub fn route(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: Option<&Table>,
        out: &mut Vec<String>,
    ) -> Result<(), MetaError> {
        let missing = || MetaError::not_found(format!("no {}", rs("exchange", exchange, vhost)));
        let v = self.vhosts.get(vhost).ok_or_else(missing)?;
        let first = v.exchanges.get(exchange).ok_or_else(missing)?;
        if exchange.is_empty() {
            if let Some((name, _)) = v.queues.get_key_value(routing_key) {
                out.push(name.clone());
            }
            return Ok(());
        }
        let start = out.len();
        // Allocated only when an exchange-to-exchange hop happens.
        let mut seen: Vec<&str> = Vec::new();
        let mut work: Vec<&str> = Vec::new();
        let mut current = Some((exchange, first));
        while let Some((name, x)) = current {
            let mut matched = false;
            x.router
                .route(routing_key, headers, &mut |d: &Destination| {
                    matched = true;
                    match d {
                        Destination::Queue(q) => out.push(q.clone()),
                        Destination::Exchange(e) => work.push(e.as_str()),
                    }
                });
            if !matched && let Some(ae) = x.def.alternate_exchange() {
                work.push(ae);
            }
            if seen.is_empty() {
                seen.push(name);
            }
            current = None;
            while let Some(next) = work.pop() {
                if seen.contains(&next) {
                    continue;
                }
                seen.push(next);
                if let Some(nx) = v.exchanges.get(next) {
                    current = Some((next, nx));
                    break;
                }
            }
        }
        sort_dedup_tail(out, start);
        Ok(())
    }
}

/// Sorts `out[start..]` and drops duplicates within it.
fn sort_dedup_tail(out: &mut Vec<String>, start: usize) {
    out[start..].sort_unstable();
    let mut keep = start;
    for i in start..out.len() {
        if keep == start || out[i] != out[keep - 1] {
            out.swap(keep, i);
            keep += 1;
        }
    }
    out.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::sort_dedup_tail;

    #[test]
    fn dedup_only_touches_the_tail() {
        let mut v: Vec<String> = ["z", "z", "b", "a", "b", "c", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_dedup_tail(&mut v, 2);
        assert_eq!(v, ["z", "z", "a", "b", "c"]);
    }
}
