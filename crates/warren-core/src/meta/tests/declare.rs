//! exchange.declare/delete: replies, equivalence, reserved names.

use super::*;

#[test]
fn exchange_declare_creates_then_finds_equivalent() {
    let mut s = MetaState::with_defaults();
    assert_eq!(
        declare_x(&mut s, xdef("x", ExchangeKind::Direct)),
        Ok(MetaReply::Created)
    );
    assert_eq!(
        declare_x(&mut s, xdef("x", ExchangeKind::Direct)),
        Ok(MetaReply::Existed)
    );
    assert_eq!(s.exchange("/", "x"), Some(&xdef("x", ExchangeKind::Direct)));
    // Arguments other than alternate-exchange may differ.
    let mut other = xdef("x", ExchangeKind::Direct);
    other.arguments = table(&[("x-whatever", ls("1"))]);
    assert_eq!(declare_x(&mut s, other), Ok(MetaReply::Existed));
}

#[test]
fn exchange_equivalence_texts() {
    let mut s = MetaState::with_defaults();
    let mut def = xdef("x", ExchangeKind::Direct);
    def.arguments = table(&[("alternate-exchange", ls("ae1"))]);
    declare_x(&mut s, def.clone()).unwrap();
    let cases: Vec<(ExchangeDef, &str)> = vec![
        (
            ExchangeDef {
                kind: ExchangeKind::Fanout,
                ..def.clone()
            },
            "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'",
        ),
        (
            ExchangeDef {
                durable: false,
                ..def.clone()
            },
            "inequivalent arg 'durable' for exchange 'x' in vhost '/': received 'false' but current is 'true'",
        ),
        (
            ExchangeDef {
                auto_delete: true,
                ..def.clone()
            },
            "inequivalent arg 'auto_delete' for exchange 'x' in vhost '/': received 'true' but current is 'false'",
        ),
        (
            ExchangeDef {
                internal: true,
                ..def.clone()
            },
            "inequivalent arg 'internal' for exchange 'x' in vhost '/': received 'true' but current is 'false'",
        ),
        (
            ExchangeDef {
                arguments: table(&[("alternate-exchange", ls("ae2"))]),
                ..def.clone()
            },
            "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': received 'ae2' but current is 'ae1'",
        ),
        (
            ExchangeDef {
                arguments: Table::new(),
                ..def.clone()
            },
            "inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': received none but current is the value 'ae1' of type 'longstr'",
        ),
    ];
    for (new, text) in cases {
        assert_eq!(
            declare_x(&mut s, new),
            Err(err(406, &format!("PRECONDITION_FAILED - {text}")))
        );
    }
    assert_eq!(s.exchange("/", "x"), Some(&def));
}

#[test]
fn exchange_reserved_and_default_names() {
    let mut s = MetaState::with_defaults();
    assert_eq!(
        declare_x(&mut s, xdef("amq.foo", ExchangeKind::Direct)),
        Err(err(
            403,
            "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"
        ))
    );
    // Predeclared amq.* exchanges can be redeclared equivalently, not otherwise.
    assert_eq!(
        declare_x(&mut s, xdef("amq.direct", ExchangeKind::Direct)),
        Ok(MetaReply::Existed)
    );
    assert_eq!(
        declare_x(&mut s, xdef("amq.direct", ExchangeKind::Topic))
            .unwrap_err()
            .text,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/': received 'topic' but current is 'direct'"
    );
    let default_refused = err(
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    );
    assert_eq!(
        declare_x(&mut s, xdef("", ExchangeKind::Direct)),
        Err(default_refused.clone())
    );
    let del = |name: &str| MetaCommand::DeleteExchange {
        vhost: "/".into(),
        name: name.into(),
        if_unused: false,
    };
    assert_eq!(s.apply(del("")), Err(default_refused));
    assert_eq!(
        s.apply(del("amq.direct")),
        Err(err(
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
        ))
    );
    let default = s.exchange("/", "").unwrap();
    assert_eq!(
        (default.kind, default.durable),
        (ExchangeKind::Direct, true)
    );
    let names: Vec<&str> = s.exchanges("/").map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.rabbitmq.trace",
            "amq.topic"
        ]
    );
}

#[test]
fn exchange_type_parsing() {
    assert_eq!(ExchangeKind::parse("topic"), Some(ExchangeKind::Topic));
    assert_eq!(ExchangeKind::Headers.as_str(), "headers");
    let e = ExchangeKind::parse_or_err("x-delayed-message").unwrap_err();
    assert_eq!(
        e,
        err(
            503,
            "COMMAND_INVALID - unknown exchange type 'x-delayed-message'"
        )
    );
    assert!(e.is_connection_error());
}

#[test]
fn exchange_alternate_exchange_must_be_a_string() {
    let mut s = MetaState::with_defaults();
    let mut def = xdef("x", ExchangeKind::Direct);
    def.arguments = table(&[("alternate-exchange", Value::I32(5))]);
    assert_eq!(
        declare_x(&mut s, def),
        Err(err(
            406,
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange 'x' in vhost '/'"
        ))
    );
}

#[test]
fn exchange_delete() {
    let mut s = MetaState::with_defaults();
    let del = |name: &str, if_unused| MetaCommand::DeleteExchange {
        vhost: "/".into(),
        name: name.into(),
        if_unused,
    };
    assert_eq!(s.apply(del("missing", true)), Ok(MetaReply::Ok));
    declare_x(&mut s, xdef("src", ExchangeKind::Fanout)).unwrap();
    declare_x(&mut s, xdef("dst", ExchangeKind::Fanout)).unwrap();
    bind(&mut s, "src", x("dst"), "").unwrap();
    assert_eq!(
        s.apply(del("src", true)),
        Err(err(
            406,
            "PRECONDITION_FAILED - exchange 'src' in vhost '/' in use"
        ))
    );
    // Being bound *to* does not count as in use.
    assert_eq!(s.apply(del("dst", true)), Ok(MetaReply::Ok));
    assert_eq!(s.exchange("/", "dst"), None);
    assert_eq!(s.bindings("/"), vec![]);
    assert_eq!(s.apply(del("src", true)), Ok(MetaReply::Ok));
}
