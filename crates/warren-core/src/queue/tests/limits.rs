//! TTL, length limits and the delivery limit, asserting exact outputs.

use super::*;

fn ttl(ms: u64) -> QueueConfig {
    QueueConfig {
        message_ttl_ms: Some(ms),
        ..dlx()
    }
}

fn enqueue_exp(msg: M, expiration_ms: u64) -> Command<M> {
    Command::Enqueue {
        msg,
        size: msg.len() as u64,
        expiration_ms: Some(expiration_ms),
        priority: 0,
    }
}

#[test]
fn queue_ttl_expires_heads_on_tick() {
    let mut q = QueueState::new(ttl(100));
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 50, enqueue("m2"));
    assert_eq!(q.next_expiry(), Some(100));
    assert_eq!(run(&mut q, 99, Command::Tick), ok());
    assert_eq!(
        run(&mut q, 100, Command::Tick),
        (Reply::Ok, vec![dead("m1", DeadLetterReason::Expired)])
    );
    assert_eq!(q.next_expiry(), Some(150));
    assert_eq!(
        run(&mut q, 500, Command::Tick),
        (Reply::Ok, vec![dead("m2", DeadLetterReason::Expired)])
    );
    assert_eq!(
        (q.message_count(), q.total_bytes(), q.next_expiry()),
        (0, 0, None)
    );
}

#[test]
fn shorter_of_queue_ttl_and_message_expiration_wins() {
    let mut q = QueueState::new(ttl(100));
    run(&mut q, 10, enqueue_exp("m1", 30));
    assert_eq!(q.next_expiry(), Some(40));
    let mut plain = QueueState::new(dlx());
    run(&mut plain, 10, enqueue_exp("m1", 300));
    assert_eq!(plain.next_expiry(), Some(310));
}

#[test]
fn only_the_head_expires() {
    let mut q = QueueState::new(dlx());
    run(&mut q, 0, enqueue_exp("long", 1000));
    run(&mut q, 0, enqueue_exp("short", 10));
    assert_eq!(run(&mut q, 20, Command::Tick), ok());
    assert_eq!(q.message_count(), 2);
    let both = vec![
        dead("long", DeadLetterReason::Expired),
        dead("short", DeadLetterReason::Expired),
    ];
    assert_eq!(run(&mut q, 1000, Command::Tick), (Reply::Ok, both));
}

#[test]
fn expired_head_is_dropped_lazily_at_dispatch_and_get() {
    let mut q = QueueState::new(dlx());
    run(&mut q, 0, enqueue_exp("m1", 10));
    run(&mut q, 5, enqueue_exp("m2", 10));
    run(&mut q, 5, enqueue("m3"));
    // m1 and m2 expired at 10 and 15; no Tick came: the consumer must not get them.
    let (reply, fx) = run(&mut q, 100, subscribe(1, "a", 0));
    assert_eq!(reply, Reply::Ok);
    let expected = vec![
        dead("m1", DeadLetterReason::Expired),
        dead("m2", DeadLetterReason::Expired),
        deliver(1, "a", 3, "m3", 0),
    ];
    assert_eq!(fx, expected);
    let mut g = QueueState::new(ttl(10));
    run(&mut g, 0, enqueue("m1"));
    assert_eq!(
        run(&mut g, 10, get(1, false)),
        (Reply::GetEmpty, vec![dead("m1", DeadLetterReason::Expired)])
    );
}

#[test]
fn ttl_zero_delivers_to_a_waiting_consumer_or_expires() {
    let mut q = QueueState::new(ttl(0));
    assert_eq!(
        run(&mut q, 7, enqueue("m1")),
        enqueued(1, vec![dead("m1", DeadLetterReason::Expired)])
    );
    run(&mut q, 7, subscribe(1, "a", 1));
    assert_eq!(
        run(&mut q, 7, enqueue("m2")),
        enqueued(2, vec![deliver(1, "a", 2, "m2", 0)])
    );
    // a is at its prefetch: m3 cannot be delivered now, so it expires.
    assert_eq!(
        run(&mut q, 8, enqueue("m3")),
        enqueued(3, vec![dead("m3", DeadLetterReason::Expired)])
    );
    assert_eq!(q.message_count(), 0);
}

#[test]
fn requeued_message_keeps_its_expiry() {
    let mut q = QueueState::new(ttl(100));
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, get(1, false));
    run(&mut q, 50, ret(1, &[1]));
    assert_eq!(q.next_expiry(), Some(100));
    assert_eq!(
        run(&mut q, 100, Command::Tick),
        (Reply::Ok, vec![dead("m1", DeadLetterReason::Expired)])
    );
}

#[test]
fn max_length_drops_head() {
    let config = QueueConfig {
        max_length: Some(2),
        ..dlx()
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, enqueue("m2"));
    assert_eq!(
        run(&mut q, 0, enqueue("m3")),
        enqueued(3, vec![dead("m1", DeadLetterReason::MaxLen)])
    );
    assert_eq!(q.ready_ids(), vec![2, 3]);
    // Unacked messages do not count towards the limit.
    run(&mut q, 0, get(1, false));
    assert_eq!(run(&mut q, 0, enqueue("m4")), enqueued(4, vec![]));
}

#[test]
fn max_length_bytes_drops_head() {
    let config = QueueConfig {
        max_length_bytes: Some(5),
        ..dlx()
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, enqueue("aa"));
    run(&mut q, 0, enqueue("bb"));
    let dropped = vec![
        dead("aa", DeadLetterReason::MaxLen),
        dead("bb", DeadLetterReason::MaxLen),
    ];
    assert_eq!(run(&mut q, 0, enqueue("cccc")), enqueued(3, dropped));
    assert_eq!((q.ready_ids(), q.ready_bytes()), (vec![3], 4));
}

#[test]
fn reject_publish_refuses_when_full() {
    let config = QueueConfig {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..dlx()
    };
    let mut q = QueueState::new(config);
    assert_eq!(run(&mut q, 0, enqueue("m1")), enqueued(1, vec![]));
    assert_eq!(run(&mut q, 0, enqueue("m2")), (Reply::Rejected, vec![]));
    run(&mut q, 0, get(1, true));
    // A rejected publish consumes no id.
    assert_eq!(run(&mut q, 0, enqueue("m3")), enqueued(2, vec![]));
}

#[test]
fn reject_publish_dlx_dead_letters_the_refused_message() {
    let config = QueueConfig {
        max_length_bytes: Some(3),
        overflow: Overflow::RejectPublishDlx,
        ..dlx()
    };
    let mut q = QueueState::new(config);
    assert_eq!(run(&mut q, 0, enqueue("m1")), enqueued(1, vec![]));
    assert_eq!(
        run(&mut q, 0, enqueue("m2")),
        (Reply::Rejected, vec![dead("m2", DeadLetterReason::MaxLen)])
    );
}

#[test]
fn delivery_limit_dead_letters_after_too_many_returns() {
    let config = QueueConfig {
        delivery_limit: Some(1),
        ..dlx()
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, subscribe(1, "a", 1));
    assert_eq!(
        run(&mut q, 0, enqueue("m1")),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    assert_eq!(
        run(&mut q, 0, ret(1, &[1])),
        (Reply::Ok, vec![deliver(1, "a", 1, "m1", 1)])
    );
    let (reply, fx) = run(&mut q, 0, Command::OwnerDown { owner: OwnerId(1) });
    assert_eq!(reply, Reply::Cancelled { consumer_count: 0 });
    assert_eq!(fx, vec![dead("m1", DeadLetterReason::DeliveryLimit)]);
    assert_eq!((q.message_count(), q.unacked_count()), (0, 0));
}

#[test]
fn policy_update_trims_to_new_limit_and_keeps_old_expiry() {
    let mut q = QueueState::new(ttl(100));
    for m in ["m1", "m2", "m3"] {
        run(&mut q, 0, enqueue(m));
    }
    let tighter = QueueConfig {
        max_length: Some(1),
        message_ttl_ms: Some(10),
        ..dlx()
    };
    let dropped = vec![
        dead("m1", DeadLetterReason::MaxLen),
        dead("m2", DeadLetterReason::MaxLen),
    ];
    let update = Command::UpdateConfig {
        config: tighter.clone(),
    };
    assert_eq!(run(&mut q, 5, update), (Reply::Ok, dropped));
    assert_eq!(q.config(), &tighter);
    assert_eq!(q.next_expiry(), Some(100));
    run(&mut q, 5, enqueue("m4"));
    assert_eq!(q.ready_ids(), vec![4]);
    assert_eq!(q.next_expiry(), Some(15));
}

#[test]
fn policy_update_to_reject_publish_keeps_backlog() {
    let mut q = QueueState::new(dlx());
    run(&mut q, 0, enqueue("m1"));
    run(&mut q, 0, enqueue("m2"));
    let full = QueueConfig {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..dlx()
    };
    assert_eq!(run(&mut q, 0, Command::UpdateConfig { config: full }), ok());
    assert_eq!(q.message_count(), 2);
    assert_eq!(run(&mut q, 0, enqueue("m3")), (Reply::Rejected, vec![]));
}
