//! Topic exchange: a trie over dot-separated words.
//!
//! Semantics are RabbitMQ's (`rabbit_exchange_type_topic`): keys and
//! patterns split on every `.`, so `a..b` has an empty middle word and `a.`
//! ends in an empty word, while the empty key has *zero* words (so `*` does
//! not match it but `#` and the empty pattern do). In a pattern `*` is
//! exactly one word and `#` zero or more. A literal key word `*` or `#` is
//! matched only by the wildcards themselves, which a trie that treats those
//! pattern words as wildcards already does.
//!
//! Routing walks the trie once per publish: no regex per binding, no
//! allocation. Consecutive `#`s are collapsed at insert (`#.#` means the
//! same as `#`), which keeps the walk from going polynomial on them.

use std::collections::BTreeMap;

use super::DestCounts;

#[derive(Debug, Clone)]
pub struct TopicTrie<D> {
    root: Node<D>,
}

#[derive(Debug, Clone)]
struct Node<D> {
    words: BTreeMap<String, Node<D>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    dests: DestCounts<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node {
            words: BTreeMap::new(),
            star: None,
            hash: None,
            dests: DestCounts::default(),
        }
    }
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
        }
    }
}

/// The words of a key or pattern as RabbitMQ splits them (`""` has none).
pub fn topic_words(key: &str) -> impl Iterator<Item = &str> {
    let words = if key.is_empty() {
        None
    } else {
        Some(key.split('.'))
    };
    words.into_iter().flatten()
}

/// Pattern words with runs of `#` collapsed to one.
fn normalized(pattern: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for w in topic_words(pattern) {
        if w == "#" && out.last() == Some(&"#") {
            continue;
        }
        out.push(w);
    }
    out
}

/// Splits off the first word of a non-empty remainder.
fn first_word(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('.') {
        Some((w, tail)) => (w, Some(tail)),
        None => (rest, None),
    }
}

impl<D: Ord + Clone> Node<D> {
    fn is_empty(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    fn child_mut(&mut self, word: &str) -> &mut Node<D> {
        match word {
            "*" => self.star.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            w => self.words.entry(w.to_owned()).or_default(),
        }
    }

    /// Removes `dest` at the end of `words`, pruning nodes left empty.
    fn remove(&mut self, words: &[&str], dest: &D) {
        let Some((word, rest)) = words.split_first() else {
            self.dests.remove(dest);
            return;
        };
        match *word {
            "*" => prune_boxed(&mut self.star, rest, dest),
            "#" => prune_boxed(&mut self.hash, rest, dest),
            w => {
                if let Some(child) = self.words.get_mut(w) {
                    child.remove(rest, dest);
                    if child.is_empty() {
                        self.words.remove(w);
                    }
                }
            }
        }
    }

    /// `rest` is `None` once every word of the key has been consumed.
    fn walk<'a, F: FnMut(&'a D)>(&'a self, rest: Option<&str>, f: &mut F, seen: &mut Seen) {
        let Some(remaining) = rest else {
            self.dests.for_each(f);
            if let Some(hash) = &self.hash {
                hash.walk_hash(None, f, seen);
            }
            return;
        };
        let (word, tail) = first_word(remaining);
        if let Some(child) = self.words.get(word) {
            child.walk(tail, f, seen);
        }
        if let Some(star) = &self.star {
            star.walk(tail, f, seen);
        }
        if let Some(hash) = &self.hash {
            // `#` swallows zero, one, two ... all of the remaining words.
            let mut suffix = rest;
            loop {
                hash.walk_hash(suffix, f, seen);
                match suffix {
                    None => break,
                    Some(s) => suffix = first_word(s).1,
                }
            }
        }
    }

    /// Enters a `#` node, unless it was already entered at this position:
    /// the same (node, suffix) always yields the same destinations, and
    /// without this a pattern like `#.a.#.a.#.a.#` costs O(words^hashes)
    /// per publish instead of O(hashes * words^2).
    fn walk_hash<'a, F: FnMut(&'a D)>(&'a self, rest: Option<&str>, f: &mut F, seen: &mut Seen) {
        let at = (
            std::ptr::from_ref(self).addr(),
            rest.map_or(0, |s| s.len() + 1),
        );
        if let Err(i) = seen.binary_search(&at) {
            seen.insert(i, at);
            self.walk(rest, f, seen);
        }
    }
}

/// `#` nodes entered during one routing walk, as (node address, remaining
/// key length), sorted. Empty, and so not allocated, for tries without `#`.
type Seen = Vec<(usize, usize)>;

fn prune_boxed<D: Ord + Clone>(slot: &mut Option<Box<Node<D>>>, rest: &[&str], dest: &D) {
    if let Some(child) = slot {
        child.remove(rest, dest);
        if child.is_empty() {
            *slot = None;
        }
    }
}

impl<D: Ord + Clone> TopicTrie<D> {
    pub fn add(&mut self, dest: D, pattern: &str) {
        let mut node = &mut self.root;
        for word in normalized(pattern) {
            node = node.child_mut(word);
        }
        node.dests.add(dest);
    }

    pub fn remove(&mut self, dest: &D, pattern: &str) {
        self.root.remove(&normalized(pattern), dest);
    }

    pub fn route<'a, F: FnMut(&'a D)>(&'a self, key: &str, f: &mut F) {
        let rest = if key.is_empty() { None } else { Some(key) };
        self.root.walk(rest, f, &mut Vec::new());
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }
}
