//! Random command sequences: the incrementally maintained routers and
//! reverse index must always agree with the bindings they are derived from.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::meta::definitions_from_json;

const QUEUES: &[&str] = &["q1", "q2", "q3"];
const EXCHANGES: &[(&str, ExchangeKind, bool)] = &[
    ("xd", ExchangeKind::Direct, false),
    ("xt", ExchangeKind::Topic, false),
    ("xf", ExchangeKind::Fanout, false),
    ("xh", ExchangeKind::Headers, false),
    ("ad", ExchangeKind::Topic, true),
];
const KEYS: &[&str] = &["a", "a.b", "#", "*.b", ""];

fn dest_strategy() -> impl Strategy<Value = Destination> {
    prop_oneof![
        prop::sample::select(QUEUES).prop_map(q),
        prop::sample::select(EXCHANGES).prop_map(|e| x(e.0)),
    ]
}

fn args_strategy() -> impl Strategy<Value = Table> {
    prop_oneof![
        Just(Table::new()),
        Just(table(&[("x-match", ls("any")), ("k", ls("v"))])),
        Just(table(&[("k", ls("w"))])),
    ]
}

fn command_strategy() -> impl Strategy<Value = MetaCommand> {
    let v = || "/".to_owned();
    let b = || {
        (
            prop::sample::select(EXCHANGES),
            dest_strategy(),
            prop::sample::select(KEYS),
            args_strategy(),
        )
            .prop_map(|(src, d, k, a)| binding(src.0, d, k, a))
    };
    prop_oneof![
        prop::sample::select(QUEUES).prop_map(move |n| MetaCommand::DeclareQueue {
            vhost: v(),
            def: qdef(n)
        }),
        prop::sample::select(QUEUES).prop_map(move |n| MetaCommand::DeleteQueue {
            vhost: v(),
            name: n.into()
        }),
        prop::sample::select(EXCHANGES).prop_map(move |(n, kind, ad)| {
            MetaCommand::DeclareExchange {
                vhost: v(),
                def: ExchangeDef {
                    auto_delete: ad,
                    ..xdef(n, kind)
                },
            }
        }),
        prop::sample::select(EXCHANGES).prop_map(move |(n, _, _)| MetaCommand::DeleteExchange {
            vhost: v(),
            name: n.into(),
            if_unused: false
        }),
        b().prop_map(move |binding| MetaCommand::Bind {
            vhost: v(),
            binding
        }),
        b().prop_map(move |binding| MetaCommand::Bind {
            vhost: v(),
            binding
        }),
        b().prop_map(move |binding| MetaCommand::Unbind {
            vhost: v(),
            binding
        }),
    ]
}

/// The reverse index lists exactly the (destination, source) pairs bound.
fn check_incoming(s: &MetaState) -> Result<(), TestCaseError> {
    let v = &s.vhosts["/"];
    let from_bindings: BTreeSet<(Destination, String)> = s
        .bindings("/")
        .into_iter()
        .map(|b| (b.destination, b.source))
        .collect();
    let from_index: BTreeSet<(Destination, String)> = v
        .incoming
        .iter()
        .flat_map(|(d, srcs)| srcs.iter().map(move |s| (d.clone(), s.clone())))
        .collect();
    prop_assert_eq!(from_index, from_bindings);
    for b in s.bindings("/") {
        prop_assert!(v.exchanges.contains_key(&b.source));
        let dest_exists = match &b.destination {
            Destination::Queue(n) => v.queues.contains_key(n),
            Destination::Exchange(n) => v.exchanges.contains_key(n),
        };
        prop_assert!(dest_exists, "dangling binding {:?}", b);
    }
    Ok(())
}

proptest! {
    #[test]
    fn routers_agree_with_a_rebuilt_state(cmds in prop::collection::vec(command_strategy(), 0..40)) {
        let mut s = MetaState::with_defaults();
        for cmd in cmds {
            let before = s.clone();
            if s.apply(cmd).is_err() {
                prop_assert_eq!(&s, &before, "a failed command changed the state");
            }
            check_incoming(&s)?;
        }
        // Rebuild from scratch through an export: fresh routers, same bindings.
        let mut rebuilt = MetaState::new();
        for cmd in definitions_from_json(&s.export_definitions().to_string()).unwrap() {
            rebuilt.apply(cmd).unwrap();
        }
        prop_assert_eq!(&rebuilt, &s);
        let headers = [None, Some(table(&[("k", ls("v"))])), Some(table(&[("k", ls("w"))]))];
        for xname in s.exchanges("/").map(|x| x.name.clone()).collect::<Vec<_>>() {
            for key in ["a", "a.b", "b", "", "c.b"] {
                for h in &headers {
                    let (mut got, mut want) = (Vec::new(), Vec::new());
                    s.route("/", &xname, key, h.as_ref(), &mut got).unwrap();
                    rebuilt.route("/", &xname, key, h.as_ref(), &mut want).unwrap();
                    prop_assert_eq!(got, want, "exchange {:?} key {:?}", xname, key);
                }
            }
        }
    }
}
