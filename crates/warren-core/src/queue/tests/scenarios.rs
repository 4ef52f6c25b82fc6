//! One test per dispatch/settlement behaviour, asserting exact outputs.

use super::*;

#[test]
fn round_robin_in_subscription_order() {
    let mut q = QueueState::new(QueueConfig::default());
    assert_eq!(run(&mut q, 0, subscribe(1, "a", 0)), ok());
    assert_eq!(run(&mut q, 0, subscribe(2, "b", 0)), ok());
    assert_eq!(
        run(&mut q, 0, enqueue("m1")),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        enqueued(2, vec![deliver(2, "b", 2, "m2", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m3")),
        enqueued(3, vec![deliver(1, "a", 3, "m3", 0)])
    );
    assert_eq!(
        (q.message_count(), q.unacked_count(), q.consumer_count()),
        (0, 3, 2)
    );
}

#[test]
fn backlog_is_spread_round_robin_when_consumer_arrives() {
    let mut q = QueueState::new(QueueConfig::default());
    assert_eq!(run(&mut q, 0, subscribe(1, "a", 1)), ok());
    for m in ["m1", "m2", "m3"] {
        run(&mut q, 0, enqueue(m));
    }
    // a holds m1 (prefetch 1); b takes the rest of the backlog in order.
    let (reply, fx) = run(&mut q, 0, subscribe(2, "b", 0));
    assert_eq!(reply, Reply::Ok);
    assert_eq!(
        fx,
        vec![deliver(2, "b", 2, "m2", 0), deliver(2, "b", 3, "m3", 0)]
    );
}

#[test]
fn prefetch_limits_deliveries_and_ack_releases_one() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 2));
    assert_eq!(
        run(&mut q, 0, enqueue("m1")),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        enqueued(2, vec![deliver(1, "a", 2, "m2", 0)])
    );
    assert_eq!(run(&mut q, 0, enqueue("m3")), enqueued(3, vec![]));
    assert_eq!(q.message_count(), 1);
    assert_eq!(q.consumer_unacked(&key(1, "a")), Some(2));
    assert_eq!(
        run(&mut q, 0, settle(1, &[1])),
        (Reply::Ok, vec![deliver(1, "a", 3, "m3", 0)])
    );
    assert_eq!(q.message_count(), 0);
    assert_eq!(q.consumer_unacked(&key(1, "a")), Some(2));
}

#[test]
fn no_ack_consumer_is_unlimited_and_holds_nothing() {
    let mut q = QueueState::new(QueueConfig::default());
    let sub = Command::Subscribe {
        consumer: key(1, "a"),
        prefetch: 1,
        no_ack: true,
        exclusive: false,
    };
    assert_eq!(run(&mut q, 0, sub), ok());
    assert_eq!(
        run(&mut q, 0, enqueue("m1")),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        enqueued(2, vec![deliver(1, "a", 2, "m2", 0)])
    );
    assert_eq!((q.unacked_count(), q.total_bytes()), (0, 0));
    let (reply, fx) = run(&mut q, 0, settle(1, &[1]));
    assert_eq!(
        (reply, fx),
        (
            Reply::Error(QueueError::UnknownDeliveryTag { msg_id: 1 }),
            vec![]
        )
    );
}

#[test]
fn returned_messages_go_first_in_id_order_and_redelivered() {
    let mut q = QueueState::new(QueueConfig::default());
    for m in ["m1", "m2", "m3", "m4"] {
        run(&mut q, 0, enqueue(m));
    }
    for _ in 0..3 {
        run(&mut q, 0, get(1, false));
    }
    assert_eq!(run(&mut q, 0, ret(1, &[3, 1])), ok());
    assert_eq!(q.ready_ids(), vec![1, 3, 4]);
    let (reply, fx) = run(&mut q, 0, subscribe(2, "b", 0));
    assert_eq!(reply, Reply::Ok);
    let expected = vec![
        deliver(2, "b", 1, "m1", 1),
        deliver(2, "b", 3, "m3", 1),
        deliver(2, "b", 4, "m4", 0),
    ];
    assert_eq!(fx, expected);
    assert_eq!(q.checked_out_ids(OwnerId(1)), vec![2]);
}

#[test]
fn owner_down_cancels_its_consumers_and_returns_everything() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 0));
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, enqueue("m2"));
    run(
        &mut q,
        0,
        Command::Cancel {
            consumer: key(1, "a"),
        },
    );
    run(&mut q, 0, enqueue("m3"));
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, subscribe(2, "b", 2));
    assert_eq!(q.checked_out_ids(OwnerId(1)), vec![1, 2, 3]);
    let (reply, fx) = run(&mut q, 0, Command::OwnerDown { owner: OwnerId(1) });
    assert_eq!(reply, Reply::Cancelled { consumer_count: 1 });
    assert_eq!(
        fx,
        vec![deliver(2, "b", 1, "m1", 1), deliver(2, "b", 2, "m2", 1)]
    );
    assert_eq!(q.ready_ids(), vec![3]);
    assert_eq!(q.checked_out_ids(OwnerId(1)), Vec::<MsgId>::new());
}

#[test]
fn cancel_keeps_unacked_with_owner_and_reports_consumer_count() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 0));
    run(&mut q, 0, enqueue("m1"));
    let cancel = Command::Cancel {
        consumer: key(1, "a"),
    };
    assert_eq!(
        run(&mut q, 0, cancel.clone()),
        (Reply::Cancelled { consumer_count: 0 }, vec![])
    );
    assert!(q.is_unused());
    assert_eq!(q.unacked_count(), 1);
    // Cancelling again is harmless, as basic.cancel of an unknown tag is.
    assert_eq!(
        run(&mut q, 0, cancel),
        (Reply::Cancelled { consumer_count: 0 }, vec![])
    );
    assert_eq!(run(&mut q, 0, settle(1, &[1])), ok());
    assert_eq!(q.unacked_count(), 0);
}

#[test]
fn reused_tag_after_cancel_does_not_inherit_old_unacked() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 1));
    run(&mut q, 0, enqueue("m1"));
    run(
        &mut q,
        0,
        Command::Cancel {
            consumer: key(1, "a"),
        },
    );
    run(&mut q, 0, subscribe(1, "a", 1));
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        enqueued(2, vec![deliver(1, "a", 2, "m2", 0)])
    );
    assert_eq!(run(&mut q, 0, settle(1, &[1])), ok());
    assert_eq!(q.consumer_unacked(&key(1, "a")), Some(1));
}

#[test]
fn get_get_empty_and_message_count() {
    let mut q = QueueState::new(QueueConfig::default());
    assert_eq!(run(&mut q, 0, get(1, false)), (Reply::GetEmpty, vec![]));
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, enqueue("m2"));
    let first = Reply::GetOk {
        msg_id: 1,
        msg: "m1",
        redelivered: false,
        message_count: 1,
    };
    assert_eq!(run(&mut q, 0, get(1, false)), (first, vec![]));
    let second = Reply::GetOk {
        msg_id: 2,
        msg: "m2",
        redelivered: false,
        message_count: 0,
    };
    assert_eq!(run(&mut q, 0, get(1, true)), (second, vec![]));
    assert_eq!(run(&mut q, 0, get(1, false)), (Reply::GetEmpty, vec![]));
    assert_eq!(q.unacked_count(), 1);
    let not_yours = Reply::Error(QueueError::UnknownDeliveryTag { msg_id: 1 });
    assert_eq!(run(&mut q, 0, settle(2, &[1])), (not_yours.clone(), vec![]));
    assert_eq!(run(&mut q, 0, settle(1, &[1])), ok());
    assert_eq!(run(&mut q, 0, settle(1, &[1])), (not_yours, vec![]));
}

#[test]
fn returned_get_is_redelivered() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, ret(1, &[1]));
    let again = Reply::GetOk {
        msg_id: 1,
        msg: "m1",
        redelivered: true,
        message_count: 0,
    };
    assert_eq!(run(&mut q, 0, get(2, false)), (again, vec![]));
}

#[test]
fn purge_removes_ready_and_keeps_unacked() {
    let mut q = QueueState::new(dlx());
    for m in ["m1", "m2", "m3"] {
        run(&mut q, 0, enqueue(m));
    }
    run(&mut q, 0, get(1, false));
    assert_eq!(
        run(&mut q, 0, Command::Purge),
        (Reply::Purged { count: 2 }, vec![])
    );
    assert_eq!(
        (q.message_count(), q.unacked_count(), q.total_bytes()),
        (0, 1, 2)
    );
    assert_eq!(run(&mut q, 0, ret(1, &[1])), ok());
    assert_eq!(q.ready_ids(), vec![1]);
}

#[test]
fn discard_dead_letters_only_with_a_dlx() {
    let mut q = QueueState::new(dlx());
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, get(1, false));
    let discard = Command::Discard {
        owner: OwnerId(1),
        msg_ids: vec![1],
    };
    assert_eq!(
        run(&mut q, 0, discard.clone()),
        (Reply::Ok, vec![dead("m1", DeadLetterReason::Rejected)])
    );
    let mut plain = QueueState::new(QueueConfig::default());
    run(&mut plain, 0, enqueue("m1"));
    run(&mut plain, 0, get(1, false));
    assert_eq!(run(&mut plain, 0, discard), ok());
    assert_eq!((plain.message_count(), plain.unacked_count()), (0, 0));
}

#[test]
fn failed_settle_changes_nothing() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, get(1, false));
    let before = q.clone();
    let err = Reply::Error(QueueError::UnknownDeliveryTag { msg_id: 7 });
    assert_eq!(run(&mut q, 0, ret(1, &[1, 7])), (err, vec![]));
    let dup = Reply::Error(QueueError::UnknownDeliveryTag { msg_id: 1 });
    assert_eq!(run(&mut q, 0, settle(1, &[1, 1])), (dup, vec![]));
    assert_eq!(q, before);
}

#[test]
fn exclusive_consumer_refuses_others() {
    let mut q = QueueState::new(QueueConfig::default()).with_name("/", "q");
    let exclusive = |owner, tag: &str| Command::Subscribe {
        consumer: key(owner, tag),
        prefetch: 0,
        no_ack: false,
        exclusive: true,
    };
    assert_eq!(run(&mut q, 0, exclusive(1, "a")), ok());
    let locked = QueueError::ExclusiveConsumer {
        resource: "queue 'q' in vhost '/'".to_owned(),
    };
    assert_eq!(
        locked.to_string(),
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    );
    assert_eq!(locked.reply_code(), 403);
    assert_eq!(
        run(&mut q, 0, subscribe(2, "b", 0)),
        (Reply::Error(locked.clone()), vec![])
    );
    run(
        &mut q,
        0,
        Command::Cancel {
            consumer: key(1, "a"),
        },
    );
    run(&mut q, 0, subscribe(2, "b", 0));
    assert_eq!(
        run(&mut q, 0, exclusive(3, "c")),
        (Reply::Error(locked), vec![])
    );
    assert_eq!(q.consumer_count(), 1);
}

#[test]
fn consumer_tag_reuse_is_refused() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 0));
    let err = QueueError::ConsumerTagInUse {
        tag: "a".to_owned(),
    };
    assert_eq!(
        (err.reply_code(), err.to_string().as_str()),
        (530, "NOT_ALLOWED - attempt to reuse consumer tag 'a'")
    );
    assert_eq!(
        run(&mut q, 0, subscribe(1, "a", 5)),
        (Reply::Error(err), vec![])
    );
    // The same tag on another channel is a different consumer.
    assert_eq!(run(&mut q, 0, subscribe(2, "a", 0)), ok());
}

#[test]
fn single_active_consumer_fails_over_in_subscription_order() {
    let config = QueueConfig {
        single_active_consumer: true,
        ..QueueConfig::default()
    };
    let mut q = QueueState::new(config);
    let activated = |owner, tag: &str| Effect::ConsumerActivated {
        consumer: key(owner, tag),
    };
    assert_eq!(
        run(&mut q, 0, subscribe(1, "a", 0)),
        (Reply::Ok, vec![activated(1, "a")])
    );
    assert_eq!(run(&mut q, 0, subscribe(2, "b", 0)), ok());
    assert_eq!(
        run(&mut q, 0, enqueue("m1")),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        enqueued(2, vec![deliver(1, "a", 2, "m2", 0)])
    );
    assert_eq!(q.active_consumer(), Some(&key(1, "a")));
    let (reply, fx) = run(&mut q, 0, Command::OwnerDown { owner: OwnerId(1) });
    assert_eq!(reply, Reply::Cancelled { consumer_count: 1 });
    let expected = vec![
        activated(2, "b"),
        deliver(2, "b", 1, "m1", 1),
        deliver(2, "b", 2, "m2", 1),
    ];
    assert_eq!(fx, expected);
}

#[test]
fn single_active_consumer_waits_for_the_active_ones_capacity() {
    let config = QueueConfig {
        single_active_consumer: true,
        ..QueueConfig::default()
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, subscribe(1, "a", 1));
    run(&mut q, 0, subscribe(2, "b", 0));
    run(&mut q, 0, enqueue("m1"));
    // a is full, but b is not active: m2 waits.
    assert_eq!(run(&mut q, 0, enqueue("m2")), enqueued(2, vec![]));
    let (reply, fx) = run(
        &mut q,
        0,
        Command::Cancel {
            consumer: key(1, "a"),
        },
    );
    assert_eq!(reply, Reply::Cancelled { consumer_count: 1 });
    let activated = Effect::ConsumerActivated {
        consumer: key(2, "b"),
    };
    assert_eq!(fx, vec![activated, deliver(2, "b", 2, "m2", 0)]);
}

#[test]
fn credit_mode_delivers_only_granted_credit() {
    let mut q = QueueState::new(QueueConfig::default());
    let sub = Command::SubscribeCredit {
        consumer: key(1, "a"),
        no_ack: false,
        exclusive: false,
    };
    assert_eq!(run(&mut q, 0, sub), ok());
    for m in ["m1", "m2", "m3"] {
        run(&mut q, 0, enqueue(m));
    }
    assert_eq!(q.message_count(), 3);
    let credit = |n| Command::Credit {
        consumer: key(1, "a"),
        credit: n,
    };
    let two = vec![deliver(1, "a", 1, "m1", 0), deliver(1, "a", 2, "m2", 0)];
    assert_eq!(run(&mut q, 0, credit(2)), (Reply::Ok, two));
    // Settling does not give credit back.
    assert_eq!(run(&mut q, 0, settle(1, &[1, 2])), ok());
    assert_eq!(
        run(&mut q, 0, credit(2)),
        (Reply::Ok, vec![deliver(1, "a", 3, "m3", 0)])
    );
    assert_eq!(
        run(&mut q, 0, enqueue("m4")),
        enqueued(4, vec![deliver(1, "a", 4, "m4", 0)])
    );
    assert_eq!(run(&mut q, 0, enqueue("m5")), enqueued(5, vec![]));
}

#[test]
fn credit_errors() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 0));
    let credit = |tag: &str| Command::Credit {
        consumer: key(1, tag),
        credit: 1,
    };
    let unknown = QueueError::UnknownConsumer {
        tag: "z".to_owned(),
    };
    assert_eq!(run(&mut q, 0, credit("z")), (Reply::Error(unknown), vec![]));
    let not_credit = QueueError::NotCreditMode {
        tag: "a".to_owned(),
    };
    assert_eq!(not_credit.reply_code(), 541);
    assert_eq!(
        run(&mut q, 0, credit("a")),
        (Reply::Error(not_credit), vec![])
    );
}

#[test]
fn payloads_lists_ready_and_unacked_only() {
    let mut q = QueueState::new(QueueConfig::default());
    for m in ["m1", "m2", "m3", "m4"] {
        run(&mut q, 0, enqueue(m));
    }
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, settle(1, &[2]));
    run(&mut q, 0, get(1, true));
    let mut live: Vec<M> = q.payloads().copied().collect();
    live.sort_unstable();
    assert_eq!(live, vec!["m1", "m4"]);
}

#[test]
fn held_deliveries_name_what_each_consumer_holds() {
    let mut q = QueueState::new(QueueConfig::default());
    run(&mut q, 0, subscribe(1, "a", 0));
    run(&mut q, 0, subscribe(2, "b", 0));
    for m in ["m1", "m2", "m3"] {
        run(&mut q, 0, enqueue(m));
    }
    // m1 goes back and out again (to b, redelivered); m2 is acked; a
    // basic.get holds nothing a consumer would be given.
    run(&mut q, 0, ret(1, &[1]));
    run(&mut q, 0, settle(2, &[2]));
    run(&mut q, 0, enqueue("m4"));
    run(&mut q, 0, get(9, false));
    assert_eq!(
        q.held_deliveries(),
        vec![
            deliver(2, "b", 1, "m1", 1),
            deliver(1, "a", 3, "m3", 0),
            deliver(1, "a", 4, "m4", 0),
        ]
    );
    assert_eq!(OwnerId::on_node(3, 77).node(), 3);
    assert_eq!(
        OwnerId::on_node(OwnerId::MAX_NODE, u64::MAX).node(),
        OwnerId::MAX_NODE
    );
}
