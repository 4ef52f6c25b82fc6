//! queue.declare/delete: replies, equivalence, exclusivity, argument checks.

use super::*;

#[test]
fn queue_declare_and_equivalence() {
    let mut s = MetaState::with_defaults();
    let mut def = qdef("q");
    def.arguments = table(&[
        ("x-message-ttl", Value::I32(1000)),
        ("x-queue-type", ls("classic")),
    ]);
    assert_eq!(declare_q(&mut s, def.clone()), Ok(MetaReply::Created));
    assert_eq!(s.queue("/", "q"), Some(&def));
    let same_width_free = QueueDef {
        arguments: table(&[
            ("x-message-ttl", Value::I64(1000)),
            ("x-unknown", ls("free")),
        ]),
        ..def.clone()
    };
    assert_eq!(declare_q(&mut s, same_width_free), Ok(MetaReply::Existed));
    let cases: Vec<(QueueDef, &str)> = vec![
        (
            QueueDef {
                durable: false,
                ..def.clone()
            },
            "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'",
        ),
        (
            QueueDef {
                auto_delete: true,
                ..def.clone()
            },
            "inequivalent arg 'auto_delete' for queue 'q' in vhost '/': received 'true' but current is 'false'",
        ),
        (
            QueueDef {
                arguments: table(&[("x-message-ttl", Value::I32(2000))]),
                ..def.clone()
            },
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but current is '1000'",
        ),
        (
            QueueDef {
                arguments: Table::new(),
                ..def.clone()
            },
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '1000' of type 'signedint'",
        ),
        (
            QueueDef {
                arguments: table(&[
                    ("x-message-ttl", Value::I32(1000)),
                    ("x-queue-type", ls("quorum")),
                ]),
                ..def.clone()
            },
            "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'quorum' but current is 'classic'",
        ),
    ];
    for (new, text) in cases {
        assert_eq!(
            declare_q(&mut s, new),
            Err(err(406, &format!("PRECONDITION_FAILED - {text}")))
        );
    }
}

#[test]
fn queue_type_missing_equals_classic_only() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("plain")).unwrap();
    let classic = QueueDef {
        arguments: table(&[("x-queue-type", ls("classic"))]),
        ..qdef("plain")
    };
    assert_eq!(declare_q(&mut s, classic), Ok(MetaReply::Existed));
    let quorum = QueueDef {
        arguments: table(&[("x-queue-type", ls("quorum"))]),
        ..qdef("plain")
    };
    assert_eq!(
        declare_q(&mut s, quorum).unwrap_err().text,
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'plain' in vhost '/': received the value 'quorum' of type 'longstr' but current is none"
    );
}

#[test]
fn queue_exclusive_ownership() {
    let mut s = MetaState::with_defaults();
    let mine = QueueDef {
        exclusive_owner: Some(1),
        durable: true,
        ..qdef("ex")
    };
    assert_eq!(declare_q(&mut s, mine.clone()), Ok(MetaReply::Created));
    // Exclusive queues are never durable.
    assert!(!s.queue("/", "ex").unwrap().durable);
    assert_eq!(declare_q(&mut s, mine.clone()), Ok(MetaReply::Existed));
    let locked = err(
        405,
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
    );
    let theirs = QueueDef {
        exclusive_owner: Some(2),
        ..mine.clone()
    };
    assert_eq!(declare_q(&mut s, theirs), Err(locked.clone()));
    let shared = QueueDef {
        exclusive_owner: None,
        durable: false,
        ..mine
    };
    assert_eq!(declare_q(&mut s, shared), Err(locked.clone()));
    assert_eq!(s.check_exclusive_access("/", "ex", 1), Ok(()));
    assert_eq!(s.check_exclusive_access("/", "ex", 2), Err(locked));
    declare_q(&mut s, qdef("open")).unwrap();
    assert_eq!(s.check_exclusive_access("/", "open", 2), Ok(()));
}

#[test]
fn queue_reserved_names() {
    let mut s = MetaState::with_defaults();
    assert_eq!(
        declare_q(&mut s, qdef("amq.q")),
        Err(err(
            403,
            "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
        ))
    );
    assert_eq!(
        declare_q(&mut s, qdef("amq.gen-Xyz")),
        Ok(MetaReply::Created)
    );
    use crate::meta::ResourceKind;
    assert_eq!(
        MetaState::check_client_name(ResourceKind::Queue, "amq.gen-Xyz")
            .unwrap_err()
            .text,
        "ACCESS_REFUSED - queue name 'amq.gen-Xyz' contains reserved prefix 'amq.*'"
    );
    assert_eq!(
        MetaState::check_client_name(ResourceKind::Queue, "jobs"),
        Ok(())
    );
}

#[test]
fn queue_delete_and_missing_vhost() {
    let mut s = MetaState::with_defaults();
    declare_q(&mut s, qdef("q")).unwrap();
    let del = |name: &str| MetaCommand::DeleteQueue {
        vhost: "/".into(),
        name: name.into(),
    };
    assert_eq!(
        s.apply(del("q")),
        Ok(MetaReply::QueueDeleted {
            vhost: "/".into(),
            name: "q".into()
        })
    );
    assert_eq!(s.apply(del("q")), Ok(MetaReply::Ok));
    assert_eq!(s.queue("/", "q"), None);
    let cmd = MetaCommand::DeclareQueue {
        vhost: "nope".into(),
        def: qdef("q"),
    };
    assert_eq!(s.apply(cmd), Err(err(404, "NOT_FOUND - no vhost 'nope'")));
}

#[test]
fn exclusive_queues_go_with_their_connection() {
    let mut s = MetaState::with_defaults();
    s.apply(MetaCommand::AddVhost { name: "v2".into() })
        .unwrap();
    for (vhost, name, owner) in [
        ("/", "a", Some(7)),
        ("/", "b", Some(8)),
        ("v2", "c", Some(7)),
        ("/", "d", None),
    ] {
        let def = QueueDef {
            exclusive_owner: owner,
            ..qdef(name)
        };
        s.apply(MetaCommand::DeclareQueue {
            vhost: vhost.into(),
            def,
        })
        .unwrap();
    }
    bind(&mut s, "amq.fanout", q("a"), "").unwrap();
    assert_eq!(
        s.apply(MetaCommand::DeleteExclusiveOf { connection: 7 }),
        Ok(MetaReply::Deleted(vec![
            ("/".into(), "a".into()),
            ("v2".into(), "c".into())
        ]))
    );
    let left: Vec<&str> = s.queues("/").map(|q| q.name.as_str()).collect();
    assert_eq!(left, ["b", "d"]);
    assert_eq!(s.bindings("/"), vec![]);
    assert_eq!(
        s.apply(MetaCommand::DeleteExclusiveOf { connection: 7 }),
        Ok(MetaReply::Deleted(vec![]))
    );
}

#[test]
fn vhost_add_and_delete() {
    let mut s = MetaState::with_defaults();
    assert_eq!(
        s.apply(MetaCommand::AddVhost { name: "/".into() }),
        Ok(MetaReply::Existed)
    );
    assert_eq!(
        s.apply(MetaCommand::AddVhost { name: "v".into() }),
        Ok(MetaReply::Created)
    );
    assert!(s.vhost_exists("v"));
    s.apply(MetaCommand::SetPermissions {
        user: "guest".into(),
        vhost: "v".into(),
        permission: crate::meta::Permission::full(),
    })
    .unwrap();
    assert_eq!(s.check_vhost_access("guest", "v"), Ok(()));
    for name in ["q2", "q1"] {
        s.apply(MetaCommand::DeclareQueue {
            vhost: "v".into(),
            def: qdef(name),
        })
        .unwrap();
    }
    assert_eq!(
        s.apply(MetaCommand::DeleteVhost { name: "v".into() }),
        Ok(MetaReply::Deleted(vec![
            ("v".into(), "q1".into()),
            ("v".into(), "q2".into())
        ]))
    );
    assert!(!s.vhost_exists("v"));
    assert_eq!(s.permission("guest", "v"), None);
    assert_eq!(s.check_vhost_access("guest", "v").unwrap_err().code, 530);
    assert_eq!(
        s.apply(MetaCommand::DeleteVhost { name: "v".into() }),
        Err(err(404, "NOT_FOUND - no vhost 'v'"))
    );
    assert_eq!(s.vhosts().collect::<Vec<_>>(), ["/"]);
}

#[test]
fn new_queue_arguments_are_validated() {
    let mut s = MetaState::with_defaults();
    let cases: Vec<(Vec<(&str, Value)>, &str)> = vec![
        (
            vec![("x-message-ttl", Value::I32(-1))],
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}",
        ),
        (
            vec![("x-message-ttl", ls("1000"))],
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"",
        ),
        (
            vec![("x-message-ttl", Value::I64(4_294_967_296))],
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_too_big,4294967296}",
        ),
        (
            vec![("x-expires", Value::I32(0))],
            "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}",
        ),
        (
            vec![("x-max-length", Value::I16(-5))],
            "invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-5}",
        ),
        (
            vec![("x-max-priority", Value::I32(256))],
            "invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}",
        ),
        (
            vec![("x-overflow", ls("drop-tail"))],
            "invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow",
        ),
        (
            vec![("x-queue-type", ls("fifo"))],
            "invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'fifo'\"",
        ),
        (
            vec![("x-single-active-consumer", Value::I32(1))],
            "invalid arg 'x-single-active-consumer' for queue 'q' in vhost '/': {unacceptable_type,signedint}",
        ),
        (
            vec![("x-dead-letter-routing-key", ls("rk"))],
            "invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined",
        ),
        (
            vec![("x-max-age", ls("7 days"))],
            "invalid arg 'x-max-age' for queue 'q' in vhost '/': invalid_max_age",
        ),
        (
            vec![("x-dead-letter-exchange", Value::I32(1))],
            "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'",
        ),
    ];
    for (args, text) in cases {
        let def = QueueDef {
            arguments: table(&args),
            ..qdef("q")
        };
        assert_eq!(
            declare_q(&mut s, def),
            Err(err(406, &format!("PRECONDITION_FAILED - {text}")))
        );
    }
    assert_eq!(s.queue("/", "q"), None);
    let fine = table(&[
        ("x-message-ttl", Value::U32(60000)),
        ("x-dead-letter-exchange", ls("")),
        ("x-dead-letter-routing-key", ls("dead")),
        ("x-max-age", ls("7D")),
        ("x-overflow", ls("reject-publish")),
        ("x-custom", Value::Void),
    ]);
    assert_eq!(
        declare_q(
            &mut s,
            QueueDef {
                arguments: fine,
                ..qdef("q")
            }
        ),
        Ok(MetaReply::Created)
    );
}

#[test]
fn quorum_queues_must_be_durable_shared_and_kept() {
    let mut s = MetaState::with_defaults();
    let quorum = || QueueDef {
        arguments: table(&[("x-queue-type", ls("quorum"))]),
        ..qdef("qq")
    };
    let cases = [
        (
            QueueDef {
                auto_delete: true,
                ..quorum()
            },
            "auto-delete",
        ),
        (
            QueueDef {
                exclusive_owner: Some(1),
                ..quorum()
            },
            "exclusive-owner",
        ),
        (
            QueueDef {
                durable: false,
                ..quorum()
            },
            "non-durable",
        ),
    ];
    for (def, property) in cases {
        assert_eq!(
            declare_q(&mut s, def),
            Err(err(
                406,
                &format!(
                    "PRECONDITION_FAILED - invalid property '{property}' for queue 'qq' in vhost '/'"
                )
            ))
        );
    }
    assert_eq!(declare_q(&mut s, quorum()), Ok(MetaReply::Created));
}
