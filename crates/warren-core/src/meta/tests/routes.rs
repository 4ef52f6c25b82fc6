//! End-to-end routing through a vhost: every exchange type, exchange to
//! exchange bindings, cycles, alternate exchanges.

use super::*;

fn setup(queues: &[&str]) -> MetaState {
    let mut s = MetaState::with_defaults();
    for name in queues {
        declare_q(&mut s, qdef(name)).unwrap();
    }
    s
}

#[test]
fn default_exchange_routes_to_existing_queue_by_name() {
    let s = setup(&["jobs"]);
    assert_eq!(route(&s, "", "jobs"), ["jobs"]);
    assert_eq!(route(&s, "", "nobody"), Vec::<String>::new());
}

#[test]
fn missing_exchange_is_404_and_out_is_appended_to() {
    let s = setup(&["q"]);
    let mut out = vec!["earlier".to_owned()];
    assert_eq!(
        s.route("/", "nx", "k", None, &mut out),
        Err(err(404, "NOT_FOUND - no exchange 'nx' in vhost '/'"))
    );
    assert_eq!(
        s.route("nov", "", "k", None, &mut out),
        Err(err(404, "NOT_FOUND - no exchange '' in vhost 'nov'"))
    );
    s.route("/", "", "q", None, &mut out).unwrap();
    assert_eq!(out, ["earlier", "q"]);
}

#[test]
fn each_exchange_type_routes() {
    let mut s = setup(&["a", "b", "c"]);
    bind(&mut s, "amq.direct", q("a"), "k1").unwrap();
    bind(&mut s, "amq.direct", q("b"), "k1").unwrap();
    bind(&mut s, "amq.direct", q("c"), "k2").unwrap();
    bind(&mut s, "amq.fanout", q("c"), "ignored").unwrap();
    bind(&mut s, "amq.fanout", q("a"), "").unwrap();
    bind(&mut s, "amq.topic", q("a"), "*.eu.#").unwrap();
    bind(&mut s, "amq.topic", q("b"), "order.#").unwrap();
    assert_eq!(route(&s, "amq.direct", "k1"), ["a", "b"]);
    assert_eq!(route(&s, "amq.direct", "k3"), Vec::<String>::new());
    assert_eq!(route(&s, "amq.fanout", "whatever"), ["a", "c"]);
    assert_eq!(route(&s, "amq.topic", "order.eu.paid"), ["a", "b"]);
    assert_eq!(route(&s, "amq.topic", "order"), ["b"]);
    assert_eq!(route(&s, "amq.topic", "x.eu"), ["a"]);
    let any = table(&[
        ("x-match", ls("any")),
        ("region", ls("eu")),
        ("tier", ls("gold")),
    ]);
    s.apply(MetaCommand::Bind {
        vhost: "/".into(),
        binding: binding("amq.headers", q("c"), "", any),
    })
    .unwrap();
    let h = table(&[("tier", ls("gold"))]);
    assert_eq!(route_h(&s, "amq.headers", "", Some(&h)), ["c"]);
    assert_eq!(route_h(&s, "amq.headers", "", None), Vec::<String>::new());
}

#[test]
fn duplicates_are_removed_and_order_is_sorted() {
    let mut s = setup(&["z", "m", "a"]);
    for (queue, key) in [
        ("z", "#"),
        ("z", "a.*"),
        ("m", "a.b"),
        ("a", "*.b"),
        ("a", "a.#"),
    ] {
        bind(&mut s, "amq.topic", q(queue), key).unwrap();
    }
    assert_eq!(route(&s, "amq.topic", "a.b"), ["a", "m", "z"]);
}

#[test]
fn exchange_to_exchange_chains_and_cycles() {
    let mut s = setup(&["q1", "q2", "q3"]);
    for name in ["x1", "x2", "x3"] {
        declare_x(&mut s, xdef(name, ExchangeKind::Fanout)).unwrap();
    }
    bind(&mut s, "x1", x("x2"), "").unwrap();
    bind(&mut s, "x2", x("x3"), "").unwrap();
    bind(&mut s, "x3", x("x1"), "").unwrap();
    bind(&mut s, "x3", x("x3"), "").unwrap();
    bind(&mut s, "x1", q("q1"), "").unwrap();
    bind(&mut s, "x2", q("q2"), "").unwrap();
    bind(&mut s, "x3", q("q3"), "").unwrap();
    bind(&mut s, "x3", q("q1"), "").unwrap();
    assert_eq!(route(&s, "x1", ""), ["q1", "q2", "q3"]);
    assert_eq!(route(&s, "x3", ""), ["q1", "q2", "q3"]);
    // A topic hop filters by the same key.
    declare_x(&mut s, xdef("t", ExchangeKind::Topic)).unwrap();
    bind(&mut s, "amq.direct", x("t"), "a.b").unwrap();
    bind(&mut s, "t", q("q2"), "a.*").unwrap();
    assert_eq!(route(&s, "amq.direct", "a.b"), ["q2"]);
}

fn with_ae(name: &str, kind: ExchangeKind, ae: &str) -> ExchangeDef {
    ExchangeDef {
        arguments: table(&[("alternate-exchange", ls(ae))]),
        ..xdef(name, kind)
    }
}

#[test]
fn alternate_exchange_takes_what_nothing_else_matched() {
    let mut s = setup(&["hit", "unrouted"]);
    declare_x(&mut s, with_ae("main", ExchangeKind::Direct, "ae")).unwrap();
    declare_x(&mut s, xdef("ae", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "main", q("hit"), "k").unwrap();
    bind(&mut s, "ae", q("unrouted"), "").unwrap();
    assert_eq!(route(&s, "main", "k"), ["hit"]);
    assert_eq!(route(&s, "main", "other"), ["unrouted"]);
    // A missing alternate exchange is ignored.
    declare_x(&mut s, with_ae("lost", ExchangeKind::Direct, "nowhere")).unwrap();
    assert_eq!(route(&s, "lost", "k"), Vec::<String>::new());
}

#[test]
fn alternate_exchanges_chain_and_cycles_end() {
    let mut s = setup(&["last"]);
    declare_x(&mut s, with_ae("a", ExchangeKind::Direct, "b")).unwrap();
    declare_x(&mut s, with_ae("b", ExchangeKind::Direct, "a")).unwrap();
    assert_eq!(route(&s, "a", "k"), Vec::<String>::new());
    declare_x(&mut s, with_ae("c", ExchangeKind::Direct, "d")).unwrap();
    declare_x(&mut s, xdef("d", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "d", q("last"), "").unwrap();
    bind(&mut s, "b", x("c"), "k").unwrap();
    // a -(ae)-> b -(binding k)-> c -(ae, c has no bindings)-> d -> last
    assert_eq!(route(&s, "a", "k"), ["last"]);
}

#[test]
fn alternate_exchange_not_used_when_a_binding_matched_an_exchange() {
    // RabbitMQ decides per exchange: a matched exchange-to-exchange binding
    // counts as routed even if nothing downstream takes the message.
    let mut s = setup(&["unrouted"]);
    declare_x(&mut s, with_ae("main", ExchangeKind::Direct, "ae")).unwrap();
    declare_x(&mut s, xdef("ae", ExchangeKind::Fanout)).unwrap();
    declare_x(&mut s, xdef("empty", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "ae", q("unrouted"), "").unwrap();
    bind(&mut s, "main", x("empty"), "k").unwrap();
    assert_eq!(route(&s, "main", "k"), Vec::<String>::new());
    assert_eq!(route(&s, "main", "j"), ["unrouted"]);
}
