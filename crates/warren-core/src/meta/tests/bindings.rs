//! Bind/unbind replies and the deletion cascades.

use super::*;

#[test]
fn bind_errors() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    assert_eq!(
        bind(&mut s, "nx", q("q"), "k"),
        Err(err(404, "NOT_FOUND - no exchange 'nx' in vhost '/'"))
    );
    assert_eq!(
        bind(&mut s, "amq.direct", q("nq"), "k"),
        Err(err(404, "NOT_FOUND - no queue 'nq' in vhost '/'"))
    );
    assert_eq!(
        bind(&mut s, "amq.direct", x("ny"), "k"),
        Err(err(404, "NOT_FOUND - no exchange 'ny' in vhost '/'"))
    );
    // Source is reported first when both are missing.
    assert_eq!(
        bind(&mut s, "nx", q("nq"), "k").unwrap_err().text,
        "NOT_FOUND - no exchange 'nx' in vhost '/'"
    );
    let refused = err(
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    );
    assert_eq!(bind(&mut s, "", q("q"), "q"), Err(refused.clone()));
    assert_eq!(bind(&mut s, "amq.direct", x(""), "k"), Err(refused.clone()));
    assert_eq!(unbind(&mut s, "", q("q"), "q"), Err(refused));
    assert_eq!(s.bindings("/"), vec![]);
}

#[test]
fn headers_binding_validates_x_match() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    let b = |args| MetaCommand::Bind {
        vhost: "/".into(),
        binding: binding("amq.headers", q("q"), "", args),
    };
    assert_eq!(
        s.apply(b(table(&[("x-match", ls("some"))]))),
        Err(err(
            406,
            "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x"
        ))
    );
    assert_eq!(
        s.apply(b(table(&[("x-match", Value::I32(1))]))),
        Err(err(
            406,
            "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr"
        ))
    );
    for mode in ["all", "any", "all-with-x", "any-with-x"] {
        assert_eq!(
            s.apply(b(table(&[("x-match", ls(mode))]))),
            Ok(MetaReply::Ok)
        );
    }
    // The same arguments on a non-headers exchange are not validated.
    let direct = MetaCommand::Bind {
        vhost: "/".into(),
        binding: binding("amq.direct", q("q"), "", table(&[("x-match", ls("some"))])),
    };
    assert_eq!(s.apply(direct), Ok(MetaReply::Ok));
}

#[test]
fn bind_is_idempotent_and_unbind_of_missing_is_ok() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    assert_eq!(bind(&mut s, "amq.direct", q("q"), "k"), Ok(MetaReply::Ok));
    assert_eq!(bind(&mut s, "amq.direct", q("q"), "k"), Ok(MetaReply::Ok));
    assert_eq!(s.bindings("/").len(), 1);
    assert_eq!(route(&s, "amq.direct", "k"), ["q"]);
    assert_eq!(unbind(&mut s, "amq.direct", q("q"), "k"), Ok(MetaReply::Ok));
    assert_eq!(route(&s, "amq.direct", "k"), Vec::<String>::new());
    assert_eq!(unbind(&mut s, "amq.direct", q("q"), "k"), Ok(MetaReply::Ok));
    assert_eq!(unbind(&mut s, "nx", q("nq"), "k"), Ok(MetaReply::Ok));
}

#[test]
fn bindings_differing_only_in_arguments_are_distinct() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    let with = |args| MetaCommand::Bind {
        vhost: "/".into(),
        binding: binding("amq.direct", q("q"), "k", args),
    };
    s.apply(with(Table::new())).unwrap();
    s.apply(with(table(&[("a", ls("1"))]))).unwrap();
    assert_eq!(s.bindings("/").len(), 2);
    unbind(&mut s, "amq.direct", q("q"), "k").unwrap();
    // The other binding still routes.
    assert_eq!(route(&s, "amq.direct", "k"), ["q"]);
}

#[test]
fn deleting_a_queue_removes_its_bindings() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    declare_q(&mut s, qdef("other")).unwrap();
    bind(&mut s, "amq.direct", q("q"), "k").unwrap();
    bind(&mut s, "amq.topic", q("q"), "#").unwrap();
    bind(&mut s, "amq.topic", q("other"), "#").unwrap();
    s.apply(MetaCommand::DeleteQueue {
        vhost: "/".into(),
        name: "q".into(),
    })
    .unwrap();
    assert_eq!(
        s.bindings("/"),
        vec![binding("amq.topic", q("other"), "#", Table::new())]
    );
    // A new queue of the same name starts unbound.
    declare_q(&mut s, qdef("q")).unwrap();
    assert_eq!(route(&s, "amq.direct", "k"), Vec::<String>::new());
    assert_eq!(route(&s, "amq.topic", "a"), ["other"]);
}

fn auto_delete(name: &str, kind: ExchangeKind) -> ExchangeDef {
    ExchangeDef {
        auto_delete: true,
        ..xdef(name, kind)
    }
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q1")).unwrap();
    declare_q(&mut s, qdef("q2")).unwrap();
    // Declared without bindings: stays.
    declare_x(&mut s, auto_delete("ad", ExchangeKind::Direct)).unwrap();
    assert!(s.exchange("/", "ad").is_some());
    bind(&mut s, "ad", q("q1"), "a").unwrap();
    bind(&mut s, "ad", q("q2"), "b").unwrap();
    unbind(&mut s, "ad", q("q1"), "a").unwrap();
    assert!(s.exchange("/", "ad").is_some());
    s.apply(MetaCommand::DeleteQueue {
        vhost: "/".into(),
        name: "q2".into(),
    })
    .unwrap();
    assert_eq!(s.exchange("/", "ad"), None);
}

#[test]
fn auto_delete_cascades_through_exchange_chains() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    declare_x(&mut s, auto_delete("ad1", ExchangeKind::Fanout)).unwrap();
    declare_x(&mut s, auto_delete("ad2", ExchangeKind::Fanout)).unwrap();
    declare_x(&mut s, xdef("keep", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "ad1", x("ad2"), "").unwrap();
    bind(&mut s, "ad2", q("q"), "").unwrap();
    bind(&mut s, "keep", x("ad1"), "").unwrap();
    assert_eq!(route(&s, "keep", ""), ["q"]);
    s.apply(MetaCommand::DeleteQueue {
        vhost: "/".into(),
        name: "q".into(),
    })
    .unwrap();
    // ad2 lost its only binding, so it went; so did ad1's binding to ad2,
    // so ad1 went; "keep" is not auto-delete and only lost its binding.
    assert_eq!(s.exchange("/", "ad2"), None);
    assert_eq!(s.exchange("/", "ad1"), None);
    assert!(s.exchange("/", "keep").is_some());
    assert_eq!(s.bindings("/"), vec![]);
}

#[test]
fn auto_delete_exchange_bound_only_as_destination_stays() {
    let mut s = MetaState::with_defaults();
    declare_x(&mut s, auto_delete("ad", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "amq.fanout", x("ad"), "").unwrap();
    unbind(&mut s, "amq.fanout", x("ad"), "").unwrap();
    assert!(s.exchange("/", "ad").is_some());
}

#[test]
fn deleting_an_exchange_removes_bindings_both_ways() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    declare_x(&mut s, xdef("mid", ExchangeKind::Fanout)).unwrap();
    declare_x(&mut s, auto_delete("up", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "up", x("mid"), "").unwrap();
    bind(&mut s, "mid", q("q"), "").unwrap();
    bind(&mut s, "mid", x("mid"), "").unwrap();
    s.apply(MetaCommand::DeleteExchange {
        vhost: "/".into(),
        name: "mid".into(),
        if_unused: false,
    })
    .unwrap();
    assert_eq!(s.bindings("/"), vec![]);
    // "up" was auto-delete and lost its only binding.
    assert_eq!(s.exchange("/", "up"), None);
    assert!(s.queue("/", "q").is_some());
    // Re-creating "mid" starts with no bindings.
    declare_x(&mut s, xdef("mid", ExchangeKind::Fanout)).unwrap();
    assert_eq!(route(&s, "mid", ""), Vec::<String>::new());
}

#[test]
fn failed_commands_leave_state_unchanged() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    bind(&mut s, "amq.topic", q("q"), "a.*").unwrap();
    let before = s.clone();
    let _ = declare_q(
        &mut s,
        QueueDef {
            durable: false,
            ..qdef("q")
        },
    );
    let _ = declare_x(&mut s, xdef("amq.topic", ExchangeKind::Direct));
    let _ = bind(&mut s, "amq.topic", q("missing"), "x");
    let _ = s.apply(MetaCommand::DeleteExchange {
        vhost: "/".into(),
        name: "amq.topic".into(),
        if_unused: false,
    });
    assert_eq!(s, before);
}
