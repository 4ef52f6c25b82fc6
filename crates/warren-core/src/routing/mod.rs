//! Routing matchers: given a routing key (and headers), which destinations
//! does one exchange's set of bindings select?
//!
//! Each exchange keeps one [`Router`], updated incrementally on bind and
//! unbind, so that routing a publish never scans or compiles anything that
//! could have been prepared at bind time: a map lookup for direct, a set for
//! fanout, a trie walk for topic, and a pre-filtered pattern list for headers.
//!
//! The matchers are generic over the destination type `D` and know nothing
//! of vhosts or exchange-to-exchange chains; `meta::MetaState::route` does
//! that walking. A matcher may report the same destination more than once
//! (two topic patterns matching one key); the caller deduplicates.

mod counts;
mod direct;
mod fanout;
mod headers;
mod topic;

pub use counts::DestCounts;
pub use direct::DirectIndex;
pub use fanout::FanoutSet;
pub use headers::{HeadersIndex, XMatch, headers_match, validate_headers_binding, values_equal};
pub use topic::{TopicTrie, topic_words};

use crate::value::Table;

/// The bindings of one exchange in the shape its type routes with.
#[derive(Debug, Clone)]
pub enum Router<D> {
    Direct(DirectIndex<D>),
    Fanout(FanoutSet<D>),
    Topic(TopicTrie<D>),
    Headers(HeadersIndex<D>),
}

impl<D: Ord + Clone> Router<D> {
    /// Adds one binding. A binding (dest, key, args) must be added at most
    /// once more than it is removed; the metadata layer guarantees that.
    pub fn add(&mut self, dest: D, routing_key: &str, args: &Table) {
        match self {
            Router::Direct(r) => r.add(dest, routing_key),
            Router::Fanout(r) => r.add(dest),
            Router::Topic(r) => r.add(dest, routing_key),
            Router::Headers(r) => r.add(dest, args),
        }
    }

    /// Removes one binding previously added with the same arguments.
    pub fn remove(&mut self, dest: &D, routing_key: &str, args: &Table) {
        match self {
            Router::Direct(r) => r.remove(dest, routing_key),
            Router::Fanout(r) => r.remove(dest),
            Router::Topic(r) => r.remove(dest, routing_key),
            Router::Headers(r) => r.remove(dest, args),
        }
    }

    /// Calls `f` for every destination a message with this routing key and
    /// these headers goes to (possibly more than once per destination).
    pub fn route<'a, F: FnMut(&'a D)>(
        &'a self,
        routing_key: &str,
        headers: Option<&Table>,
        f: &mut F,
    ) {
        match self {
            Router::Direct(r) => r.route(routing_key, f),
            Router::Fanout(r) => r.route(f),
            Router::Topic(r) => r.route(routing_key, f),
            Router::Headers(r) => r.route(headers, f),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Router::Direct(r) => r.is_empty(),
            Router::Fanout(r) => r.is_empty(),
            Router::Topic(r) => r.is_empty(),
            Router::Headers(r) => r.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests;
