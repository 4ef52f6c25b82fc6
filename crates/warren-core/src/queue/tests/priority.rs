//! Priority queues (x-max-priority), asserting exact outputs: order,
//! requeue, length limits, TTL, purge and get across priorities.

use super::super::state::Msg;
use super::*;

fn prio(max: u8) -> QueueConfig {
    QueueConfig {
        max_priority: Some(max),
        ..dlx()
    }
}

fn enqueue_p(msg: M, priority: u8) -> Command<M> {
    Command::Enqueue {
        msg,
        size: msg.len() as u64,
        expiration_ms: None,
        priority,
    }
}

fn enqueue_pe(msg: M, priority: u8, expiration_ms: u64) -> Command<M> {
    Command::Enqueue {
        msg,
        size: msg.len() as u64,
        expiration_ms: Some(expiration_ms),
        priority,
    }
}

fn got(msg_id: MsgId, msg: M, redelivered: bool, message_count: u64) -> Out {
    let reply = Reply::GetOk {
        msg_id,
        msg,
        redelivered,
        message_count,
    };
    (reply, vec![])
}

#[test]
fn higher_priority_goes_first_fifo_within_a_priority() {
    let mut q = QueueState::new(prio(10));
    for (m, p) in [
        ("low", 1),
        ("high", 9),
        ("none", 0),
        ("mid", 5),
        ("mid2", 5),
    ] {
        run(&mut q, 0, enqueue_p(m, p));
    }
    assert_eq!(q.ready_ids(), vec![2, 4, 5, 1, 3]);
    assert_eq!(run(&mut q, 0, get(1, true)), got(2, "high", false, 4));
    assert_eq!(run(&mut q, 0, get(1, true)), got(4, "mid", false, 3));
    assert_eq!(run(&mut q, 0, get(1, true)), got(5, "mid2", false, 2));
    assert_eq!(run(&mut q, 0, get(1, true)), got(1, "low", false, 1));
    assert_eq!(run(&mut q, 0, get(1, true)), got(3, "none", false, 0));
    assert_eq!(run(&mut q, 0, get(1, true)), (Reply::GetEmpty, vec![]));
}

#[test]
fn priority_above_the_max_counts_as_the_max() {
    let mut q = QueueState::new(prio(3));
    for (m, p) in [("a", 3), ("b", 200), ("c", 2), ("d", 3)] {
        run(&mut q, 0, enqueue_p(m, p));
    }
    // b is a priority-3 message: FIFO with a and d, ahead of c.
    assert_eq!(q.ready_ids(), vec![1, 2, 4, 3]);
}

#[test]
fn without_max_priority_the_property_is_ignored() {
    for config in [dlx(), prio(0)] {
        let mut q = QueueState::new(config);
        for (m, p) in [("a", 0), ("b", 9), ("c", 5)] {
            run(&mut q, 0, enqueue_p(m, p));
        }
        assert_eq!(q.ready_ids(), vec![1, 2, 3]);
    }
}

#[test]
fn consumer_gets_the_highest_priority_as_capacity_frees() {
    let mut q = QueueState::new(prio(5));
    run(&mut q, 0, subscribe(1, "a", 1));
    // Nothing waits, so the first message goes out at once whatever its
    // priority (RabbitMQ's "interaction with consumers" caveat).
    assert_eq!(
        run(&mut q, 0, enqueue_p("m1", 0)),
        enqueued(1, vec![deliver(1, "a", 1, "m1", 0)])
    );
    for (m, p) in [("m2", 1), ("m3", 5), ("m4", 5)] {
        run(&mut q, 0, enqueue_p(m, p));
    }
    assert_eq!(
        run(&mut q, 0, settle(1, &[1])),
        (Reply::Ok, vec![deliver(1, "a", 3, "m3", 0)])
    );
    assert_eq!(
        run(&mut q, 0, settle(1, &[3])),
        (Reply::Ok, vec![deliver(1, "a", 4, "m4", 0)])
    );
    assert_eq!(
        run(&mut q, 0, settle(1, &[4])),
        (Reply::Ok, vec![deliver(1, "a", 2, "m2", 0)])
    );
}

#[test]
fn returned_messages_go_back_into_their_priority() {
    let mut q = QueueState::new(prio(5));
    for (m, p) in [("h1", 5), ("l1", 1), ("h2", 5), ("l2", 1)] {
        run(&mut q, 0, enqueue_p(m, p));
    }
    assert_eq!(run(&mut q, 0, get(1, false)), got(1, "h1", false, 3));
    assert_eq!(run(&mut q, 0, get(1, false)), got(3, "h2", false, 2));
    assert_eq!(run(&mut q, 0, get(1, false)), got(2, "l1", false, 1));
    run(&mut q, 0, enqueue_p("h3", 5));
    assert_eq!(run(&mut q, 0, ret(1, &[2, 1])), ok());
    // Per priority: returned first (by id), then never delivered.
    assert_eq!(q.ready_ids(), vec![1, 5, 2, 4]);
    let (reply, fx) = run(&mut q, 0, subscribe(2, "b", 0));
    assert_eq!(reply, Reply::Ok);
    let expected = vec![
        deliver(2, "b", 1, "h1", 1),
        deliver(2, "b", 5, "h3", 0),
        deliver(2, "b", 2, "l1", 1),
        deliver(2, "b", 4, "l2", 0),
    ];
    assert_eq!(fx, expected);
    assert_eq!(q.checked_out_ids(OwnerId(1)), vec![3]);
}

#[test]
fn owner_down_requeues_into_priorities() {
    let mut q = QueueState::new(prio(2));
    run(&mut q, 0, enqueue_p("lo", 0));
    run(&mut q, 0, enqueue_p("hi", 2));
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, get(1, false));
    run(&mut q, 0, enqueue_p("lo2", 0));
    let (reply, fx) = run(&mut q, 0, Command::OwnerDown { owner: OwnerId(1) });
    assert_eq!(
        (reply, fx),
        (Reply::Cancelled { consumer_count: 0 }, vec![])
    );
    assert_eq!(q.ready_ids(), vec![2, 1, 3]);
    assert_eq!(run(&mut q, 0, get(2, true)), got(2, "hi", true, 2));
}

#[test]
fn max_length_drops_the_head_of_the_delivery_order() {
    // As RabbitMQ documents: the head is the highest priority's oldest
    // message, so a high-priority message may make way for a lower one.
    let config = QueueConfig {
        max_length: Some(2),
        ..prio(5)
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, enqueue_p("lo", 1));
    run(&mut q, 0, enqueue_p("hi", 5));
    assert_eq!(
        run(&mut q, 0, enqueue_p("mid", 3)),
        enqueued(3, vec![dead("hi", DeadLetterReason::MaxLen)])
    );
    assert_eq!(q.ready_ids(), vec![3, 1]);
    let bytes = QueueConfig {
        max_length_bytes: Some(4),
        ..prio(5)
    };
    let mut b = QueueState::new(bytes);
    run(&mut b, 0, enqueue_p("aa", 0));
    run(&mut b, 0, enqueue_p("bb", 2));
    assert_eq!(
        run(&mut b, 0, enqueue_p("c", 1)),
        enqueued(3, vec![dead("bb", DeadLetterReason::MaxLen)])
    );
    assert_eq!((b.ready_ids(), b.ready_bytes()), (vec![3, 1], 3));
}

#[test]
fn reject_publish_counts_every_priority() {
    let config = QueueConfig {
        max_length: Some(2),
        overflow: Overflow::RejectPublish,
        ..prio(5)
    };
    let mut q = QueueState::new(config);
    run(&mut q, 0, enqueue_p("a", 0));
    run(&mut q, 0, enqueue_p("b", 4));
    assert_eq!(run(&mut q, 0, enqueue_p("c", 5)), (Reply::Rejected, vec![]));
    assert_eq!(q.ready_ids(), vec![2, 1]);
}

#[test]
fn expired_low_priority_waits_behind_live_high_priority() {
    let mut q = QueueState::new(prio(5));
    run(&mut q, 0, enqueue_pe("lo", 1, 10));
    run(&mut q, 0, enqueue_pe("hi", 5, 1000));
    assert_eq!(q.next_expiry(), Some(1000));
    assert_eq!(run(&mut q, 20, Command::Tick), ok());
    assert_eq!(q.message_count(), 2);
    assert_eq!(run(&mut q, 20, get(1, true)), got(2, "hi", false, 1));
    assert_eq!(q.next_expiry(), Some(10));
    assert_eq!(
        run(&mut q, 20, Command::Tick),
        (Reply::Ok, vec![dead("lo", DeadLetterReason::Expired)])
    );
    // Once a priority empties by expiry, the next one's heads are looked at
    // in the same pass.
    run(&mut q, 100, enqueue_pe("a", 5, 10));
    run(&mut q, 100, enqueue_pe("b", 1, 10));
    run(&mut q, 100, enqueue_pe("c", 0, 50));
    let both = vec![
        dead("a", DeadLetterReason::Expired),
        dead("b", DeadLetterReason::Expired),
    ];
    assert_eq!(run(&mut q, 110, Command::Tick), (Reply::Ok, both));
    assert_eq!((q.ready_ids(), q.next_expiry()), (vec![5], Some(150)));
}

#[test]
fn expired_heads_are_skipped_at_dispatch_across_priorities() {
    let mut q = QueueState::new(prio(5));
    run(&mut q, 0, enqueue_pe("hi", 5, 10));
    run(&mut q, 0, enqueue_p("mid", 3));
    run(&mut q, 0, enqueue_p("lo", 1));
    let (reply, fx) = run(&mut q, 50, subscribe(1, "a", 1));
    assert_eq!(reply, Reply::Ok);
    let expected = vec![
        dead("hi", DeadLetterReason::Expired),
        deliver(1, "a", 2, "mid", 0),
    ];
    assert_eq!(fx, expected);
}

#[test]
fn purge_and_get_count_every_priority() {
    let mut q = QueueState::new(prio(3));
    for (m, p) in [("a", 0), ("b", 3), ("c", 1)] {
        run(&mut q, 0, enqueue_p(m, p));
    }
    assert_eq!(run(&mut q, 0, get(1, false)), got(2, "b", false, 2));
    assert_eq!(
        run(&mut q, 0, Command::Purge),
        (Reply::Purged { count: 2 }, vec![])
    );
    assert_eq!((q.message_count(), q.ready_bytes()), (0, 0));
    assert_eq!(q.unacked_count(), 1);
    assert_eq!(run(&mut q, 0, ret(1, &[2])), ok());
    assert_eq!(q.ready_ids(), vec![2]);
}

#[test]
fn changed_max_priority_applies_to_new_messages_only() {
    let mut q = QueueState::new(prio(5));
    run(&mut q, 0, enqueue_p("a", 1));
    run(&mut q, 0, enqueue_p("b", 5));
    assert_eq!(
        run(&mut q, 0, Command::UpdateConfig { config: dlx() }),
        ok()
    );
    run(&mut q, 0, enqueue_p("c", 9));
    assert_eq!(q.ready_ids(), vec![2, 1, 3]);
}

#[test]
fn priority_costs_no_space_per_message() {
    // The u8 sits in the padding after `delivery_count` (64-bit targets).
    assert_eq!(std::mem::size_of::<Msg<u64>>(), 48);
}
