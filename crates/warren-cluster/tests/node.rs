//! The node API end to end over the in-memory store: metadata through its
//! group, queue groups with bodies in the log, snapshots and compaction,
//! and restarts (a new node over the same store).

use bytes::Bytes;
use warren_cluster::{ClusterError, Node, QueueGroup};
use warren_core::message::Message;
use warren_core::meta::{
    BindingDef, Destination, ExchangeDef, ExchangeKind, MetaCommand, MetaReply, QueueDef,
};
use warren_core::queue::{Command, ConsumerKey, Effect, OwnerId, QueueConfig, Reply};
use warren_core::value::Table;
use warren_storage::{LogStore, MemStore};

fn msg(body: &str) -> Message {
    Message {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0x10, 0x00, 2]),
        body: Bytes::copy_from_slice(body.as_bytes()),
        persistent: true,
        priority: 0,
        expiration_ms: None,
    }
}

fn enqueue(m: Message) -> Command<Message> {
    let size = m.size();
    Command::Enqueue {
        msg: m,
        size,
        expiration_ms: None,
        priority: 0,
    }
}

fn declare_queue(name: &str) -> MetaCommand {
    MetaCommand::DeclareQueue {
        vhost: "/".into(),
        def: QueueDef {
            name: name.into(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: Table::new(),
            home: None,
        },
    }
}

async fn enqueue_all(q: &QueueGroup<MemStore>, bodies: &[&str]) -> Result<(), ClusterError> {
    for b in bodies {
        let (reply, fx) = q.apply(enqueue(msg(b))).await?;
        assert!(matches!(reply, Reply::Enqueued { .. }), "{reply:?}");
        assert!(fx.is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn metadata_goes_through_its_group() -> anyhow::Result<()> {
    let node = Node::open_in_memory(1).await?;
    // A fresh node has RabbitMQ's defaults.
    assert!(node.meta().vhost_exists("/"));
    assert!(node.meta().user("guest").is_some());

    assert_eq!(
        node.meta_apply(declare_queue("q1")).await?,
        Ok(MetaReply::Created)
    );
    assert_eq!(
        node.meta_apply(declare_queue("q1")).await?,
        Ok(MetaReply::Existed)
    );
    let x = ExchangeDef {
        name: "x".into(),
        kind: ExchangeKind::Fanout,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Table::new(),
    };
    let declare_x = MetaCommand::DeclareExchange {
        vhost: "/".into(),
        def: x,
    };
    assert_eq!(node.meta_apply(declare_x).await?, Ok(MetaReply::Created));
    let bind = MetaCommand::Bind {
        vhost: "/".into(),
        binding: BindingDef {
            source: "x".into(),
            destination: Destination::Queue("q1".into()),
            routing_key: String::new(),
            arguments: Table::new(),
        },
    };
    assert_eq!(node.meta_apply(bind).await?, Ok(MetaReply::Ok));
    assert_eq!(node.meta().bindings("/").len(), 1);

    // The machine's refusals come back as the inner error, with RabbitMQ's text.
    let err = node
        .meta_apply(MetaCommand::DeleteVhost {
            name: "nope".into(),
        })
        .await?
        .unwrap_err();
    assert_eq!(err.code, 404);
    assert_eq!(err.text, "NOT_FOUND - no vhost 'nope'");
    node.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn queue_group_delivers_log_indexes_and_serves_bodies() -> anyhow::Result<()> {
    let node = Node::open_in_memory(1).await?;
    let q = node
        .create_queue(5, "/", "q1", QueueConfig::default())
        .await?;
    assert!(matches!(
        node.create_queue(5, "/", "q1", QueueConfig::default())
            .await,
        Err(ClusterError::GroupExists(5))
    ));
    enqueue_all(&q, &["a", "b", "c"]).await?;
    assert_eq!(q.with_state(|s| s.message_count()), Some(3));

    let consumer = ConsumerKey::new(OwnerId(9), "ctag");
    let sub = Command::Subscribe {
        consumer: consumer.clone(),
        prefetch: 2,
        no_ack: false,
        exclusive: false,
    };
    let (reply, fx) = q.apply(sub).await?;
    assert_eq!(reply, Reply::Ok);
    assert_eq!(fx.len(), 2, "prefetch 2: {fx:?}");
    let mut ids = Vec::new();
    for (e, want) in fx.iter().zip(["a", "b"]) {
        let Effect::Deliver {
            consumer: c,
            msg_id,
            msg: index,
            redelivered,
            ..
        } = e
        else {
            panic!("deliver expected: {e:?}");
        };
        assert_eq!(c, &consumer);
        assert!(!redelivered);
        assert_eq!(q.body(*index).await?, msg(want));
        ids.push(*msg_id);
    }
    // Acking one frees a slot: "c" goes out.
    let settle = Command::Settle {
        owner: OwnerId(9),
        msg_ids: vec![ids[0]],
    };
    let (_, fx) = q.apply(settle).await?;
    let [Effect::Deliver { msg: index, .. }] = fx.as_slice() else {
        panic!("one delivery expected: {fx:?}");
    };
    assert_eq!(q.body(*index).await?.body, Bytes::from_static(b"c"));
    node.delete_queue(5).await?;
    assert!(node.queue(5).is_none());
    node.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn bodies_survive_compaction_until_settled() -> anyhow::Result<()> {
    let store = MemStore::new();
    let node = Node::with_store(store.clone(), 1).await?;
    let q = node
        .create_queue(3, "/", "q", QueueConfig::default())
        .await?;
    enqueue_all(&q, &["m1", "m2", "m3"]).await?;
    let get = Command::Get {
        owner: OwnerId(1),
        no_ack: false,
    };
    let (
        Reply::GetOk {
            msg_id, msg: first, ..
        },
        _,
    ) = q.apply(get).await?
    else {
        panic!("get-ok expected");
    };
    // Compact: the log no longer holds the enqueues; unsettled bodies moved.
    q.snapshot().await?;
    let state = store.log_state(3)?;
    assert!(state.first_index.is_none_or(|f| f > first), "{state:?}");
    assert!(store.get_body(3, first)?.is_some());
    // A fresh handle (no cache) reads the bodies from the store.
    node.shutdown().await?;
    drop(q);
    drop(node);
    let node = Node::with_store(store.clone(), 1).await?;
    let q = node.queue(3).expect("queue group is back");
    assert_eq!(q.body(first).await?, msg("m1"));
    // Settled, then compacted again: its body goes.
    q.apply(Command::Settle {
        owner: OwnerId(1),
        msg_ids: vec![msg_id],
    })
    .await?;
    q.snapshot().await?;
    assert!(store.get_body(3, first)?.is_none());
    assert!(matches!(
        q.body(first).await,
        Err(ClusterError::NoMessage { .. })
    ));
    node.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn restart_brings_back_metadata_and_queues_from_snapshot_and_log() -> anyhow::Result<()> {
    let store = MemStore::new();
    let node = Node::with_store(store.clone(), 1).await?;
    node.meta_apply(declare_queue("before")).await??;
    let q = node
        .create_queue(11, "/", "q", QueueConfig::default())
        .await?;
    enqueue_all(&q, &["1", "2", "3", "4"]).await?;
    q.apply(Command::Get {
        owner: OwnerId(4),
        no_ack: false,
    })
    .await?;
    node.snapshot_meta().await?;
    q.snapshot().await?;
    // A suffix after the snapshots, replayed from the log.
    node.meta_apply(declare_queue("after")).await??;
    enqueue_all(&q, &["5"]).await?;
    q.apply(Command::Return {
        owner: OwnerId(4),
        msg_ids: vec![1],
    })
    .await?;

    let meta_before = node.meta();
    let queue_before = q.with_state(|s| s.clone());
    node.shutdown().await?;
    drop(q);
    drop(node);

    let node = Node::with_store(store, 1).await?;
    assert_eq!(node.meta(), meta_before);
    assert!(node.meta().queue("/", "after").is_some());
    assert_eq!(node.queue_groups(), vec![11]);
    let q = node.queue(11).expect("queue group is back");
    assert_eq!(q.with_state(|s| s.clone()), queue_before);
    assert_eq!(q.with_state(|s| s.message_count()), Some(5));
    // The requeued message comes first, redelivered, with its body.
    let get = Command::Get {
        owner: OwnerId(5),
        no_ack: true,
    };
    let (
        Reply::GetOk {
            msg: index,
            redelivered,
            ..
        },
        _,
    ) = q.apply(get).await?
    else {
        panic!("get-ok expected");
    };
    assert!(redelivered);
    assert_eq!(q.body(index).await?, msg("1"));
    node.shutdown().await?;
    Ok(())
}
