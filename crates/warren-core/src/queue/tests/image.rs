//! The state's image, exactly: what each part of the state becomes, and
//! that the rebuilt state answers the next command as the original does.

use super::*;

fn msg(id: MsgId, payload: M, delivery_count: u32, priority: u8) -> MsgImage<M> {
    MsgImage {
        id,
        size: payload.len() as u64,
        expiry: Some(100),
        delivery_count,
        priority,
        payload,
    }
}

/// A priority queue with a requeued and a fresh ready message, one message
/// out with a credit consumer and one with a prefetch consumer.
fn busy_queue() -> QueueState<M> {
    let config = QueueConfig {
        message_ttl_ms: Some(100),
        max_priority: Some(5),
        ..QueueConfig::default()
    };
    let mut q = QueueState::new(config).with_name("/", "q");
    let prio = |msg: M, priority: u8| Command::Enqueue {
        msg,
        size: msg.len() as u64,
        expiration_ms: None,
        priority,
    };
    run(&mut q, 0, prio("a", 0));
    run(&mut q, 0, prio("bb", 3));
    run(&mut q, 0, prio("ccc", 0));
    // "bb" goes out by basic.get and comes back requeued.
    run(&mut q, 0, get(7, false));
    run(&mut q, 0, ret(7, &[2]));
    let credit = Command::SubscribeCredit {
        consumer: key(1, "cr"),
        no_ack: false,
        exclusive: false,
    };
    run(&mut q, 0, credit);
    let grant = Command::Credit {
        consumer: key(1, "cr"),
        credit: 1,
    };
    assert_eq!(
        run(&mut q, 0, grant),
        (Reply::Ok, vec![deliver(1, "cr", 2, "bb", 1)])
    );
    assert_eq!(
        run(&mut q, 0, subscribe(2, "p", 1)),
        (Reply::Ok, vec![deliver(2, "p", 1, "a", 0)])
    );
    run(&mut q, 0, get(7, false));
    run(&mut q, 0, ret(7, &[3]));
    run(&mut q, 0, enqueue("dddd"));
    q
}

#[test]
fn image_holds_every_part_of_the_state() {
    let q = busy_queue();
    let want = QueueImage {
        config: q.config().clone(),
        resource: "queue 'q' in vhost '/'".into(),
        next_msg_id: 5,
        ready: vec![
            ReadyMsg {
                msg: msg(3, "ccc", 1, 0),
                requeued: true,
            },
            ReadyMsg {
                msg: msg(4, "dddd", 0, 0),
                requeued: false,
            },
        ],
        checked_out: vec![
            CheckedOutMsg {
                owner: OwnerId(2),
                consumer: Some(1),
                msg: msg(1, "a", 0, 0),
            },
            CheckedOutMsg {
                owner: OwnerId(1),
                consumer: Some(0),
                msg: msg(2, "bb", 1, 3),
            },
        ],
        consumers: vec![
            ConsumerImage {
                seq: 0,
                key: key(1, "cr"),
                no_ack: false,
                exclusive: false,
                limit: Limit::Credit(0),
                unacked: 1,
            },
            ConsumerImage {
                seq: 1,
                key: key(2, "p"),
                no_ack: false,
                exclusive: false,
                limit: Limit::Prefetch(1),
                unacked: 1,
            },
        ],
        next_consumer_seq: 2,
        cursor: 2,
    };
    assert_eq!(q.image(), want);
}

#[test]
fn rebuilt_state_is_equal_and_answers_alike() {
    let mut q = busy_queue();
    let mut back = QueueState::from_image(q.image());
    assert_eq!(back, q);
    assert_eq!(back.total_bytes(), 10);
    assert_eq!(back.consumer_unacked(&key(2, "p")), Some(1));
    // Acking "a" frees p's slot: the requeued "ccc" goes before "dddd".
    let want = (Reply::Ok, vec![deliver(2, "p", 3, "ccc", 1)]);
    assert_eq!(run(&mut q, 0, settle(2, &[1])), want);
    assert_eq!(run(&mut back, 0, settle(2, &[1])), want);
    assert_eq!(back, q);
}

#[test]
fn empty_state_roundtrips() {
    let q: QueueState<M> = QueueState::new(QueueConfig::default());
    let image = q.image();
    assert!(image.ready.is_empty() && image.consumers.is_empty());
    assert_eq!(QueueState::from_image(image), q);
}
