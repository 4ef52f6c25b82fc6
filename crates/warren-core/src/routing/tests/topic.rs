//! The topic trie against a table of RabbitMQ cases and, by property test,
//! against a naive recursive matcher written independently of the trie.

use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::routing::TopicTrie;

/// How RabbitMQ splits keys: "" has no words, otherwise split on every dot.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

fn naive(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|i| naive(rest, &key[i..])),
        Some((&"*", rest)) => !key.is_empty() && naive(rest, &key[1..]),
        Some((w, rest)) => key.first() == Some(w) && naive(rest, &key[1..]),
    }
}

fn trie_matches(pattern: &str, key: &str) -> bool {
    let mut t = TopicTrie::default();
    t.add(0u8, pattern);
    let mut hit = false;
    t.route(key, &mut |_| hit = true);
    hit
}

const TABLE: &[(&str, &str, bool)] = &[
    ("a.b.c", "a.b.c", true),
    ("a.b.c", "a.b", false),
    ("a.b", "a.b.c", false),
    ("a.*.c", "a.b.c", true),
    ("a.*.c", "a.c", false),
    ("*", "a", true),
    ("*", "", false),
    ("*", "a.b", false),
    ("#", "", true),
    ("#", "a.b.c", true),
    ("#", ".", true),
    ("", "", true),
    ("", "a", false),
    ("a.#", "a", true),
    ("a.#", "a.b.c", true),
    ("a.#", "b", false),
    ("a.#", "ab", false),
    ("#.a", "a", true),
    ("#.a", "x.y.a", true),
    ("#.a", "a.x", false),
    ("a.#.b", "a.b", true),
    ("a.#.b", "a.x.y.b", true),
    ("a.#.b", "a.x.y", false),
    ("#.#", "", true),
    ("#.#", "a.b", true),
    ("a.#.#.b", "a.b", true),
    ("a.#.#.b", "a.x.b", true),
    ("#.*", "", false),
    ("#.*", "a", true),
    ("#.*", "a.b.c", true),
    ("*.#", "a.b", true),
    ("*.#", "", false),
    ("a..b", "a..b", true),
    ("a..b", "a.b", false),
    ("a.*.b", "a..b", true),
    ("a.#.b", "a..b", true),
    ("a.", "a.", true),
    ("a.", "a", false),
    ("a.*", "a.", true),
    ("*.*", "a.", true),
    (".", ".", true),
    ("*", ".", false),
    ("*.*", ".", true),
    ("#.b.#", "a.b.c", true),
    ("#.b.#", "b", true),
    ("#.b.#", "a.c", false),
    ("*.b.#", "b", false),
    ("a.*.#", "a", false),
    ("a.*.#", "a.b", true),
    ("#.a.#.b.#", "x.a.y.b.z", true),
    ("#.a.#.b.#", "b.a", false),
    ("*", "*", true),
    ("a", "*", false),
    ("#", "#", true),
    ("a.#", "a.#", true),
    ("order.created.*", "order.created.eu", true),
    ("order.created.*", "order.created", false),
    ("order.#", "order", true),
];

#[test]
fn rabbitmq_cases() {
    for (pattern, key, expected) in TABLE {
        assert_eq!(
            trie_matches(pattern, key),
            *expected,
            "pattern {pattern:?} key {key:?}"
        );
        assert_eq!(
            naive(&words(pattern), &words(key)),
            *expected,
            "naive: pattern {pattern:?} key {key:?}"
        );
    }
}

#[test]
fn remove_prunes_and_keeps_other_bindings() {
    let mut t = TopicTrie::default();
    t.add("q1", "a.#");
    t.add("q2", "a.#");
    t.add("q1", "a.#.#");
    t.remove(&"q1", "a.#");
    let mut got = Vec::new();
    t.route("a.b", &mut |d| got.push(*d));
    got.sort_unstable();
    got.dedup();
    // q1 is still bound through "a.#.#" (same trie path as "a.#").
    assert_eq!(got, ["q1", "q2"]);
    t.remove(&"q1", "a.#.#");
    t.remove(&"q2", "a.#");
    assert!(t.is_empty());
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "", "*", "#"]), 0..5)
        .prop_map(|w| w.join("."))
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "", "*"]), 0..6)
        .prop_map(|w| w.join("."))
}

fn routed(t: &TopicTrie<usize>, key: &str) -> BTreeSet<usize> {
    let mut got = BTreeSet::new();
    t.route(key, &mut |d| {
        got.insert(*d);
    });
    got
}

proptest! {
    #[test]
    fn trie_agrees_with_naive_matcher(
        patterns in prop::collection::vec(pattern_strategy(), 0..8),
        keys in prop::collection::vec(key_strategy(), 1..8),
        removed in prop::collection::vec(any::<bool>(), 8),
    ) {
        let mut t = TopicTrie::default();
        for (i, p) in patterns.iter().enumerate() {
            t.add(i, p);
        }
        for k in &keys {
            let expected: BTreeSet<usize> = patterns.iter().enumerate()
                .filter(|(_, p)| naive(&words(p), &words(k))).map(|(i, _)| i).collect();
            prop_assert_eq!(routed(&t, k), expected, "key {:?}", k);
        }
        for (i, p) in patterns.iter().enumerate() {
            if removed[i] {
                t.remove(&i, p);
            }
        }
        for k in &keys {
            let expected: BTreeSet<usize> = patterns.iter().enumerate()
                .filter(|(i, p)| !removed[*i] && naive(&words(p), &words(k))).map(|(i, _)| i).collect();
            prop_assert_eq!(routed(&t, k), expected, "after removal, key {:?}", k);
        }
        if removed.iter().take(patterns.len()).all(|r| *r) {
            prop_assert!(t.is_empty());
        }
    }
}

#[test]
fn many_hashes_do_not_explode() {
    // Without memoising (#-node, position) this is ~120^6 steps.
    let mut t = TopicTrie::default();
    t.add(1u8, "#.a.#.a.#.a.#.a.#.a.#.b");
    t.add(2u8, "#.a.#.a.#.a.#.a.#.a.#");
    let key = vec!["a"; 120].join(".");
    let mut got = Vec::new();
    t.route(&key, &mut |d| got.push(*d));
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, [2]);
}
