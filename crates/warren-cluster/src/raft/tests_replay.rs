//! Queue snapshots: a snapshot taken after any prefix of a command log,
//! restored and followed by the rest of the log, gives exactly the state of
//! applying the whole log (STYLE.md 8), also across several snapshots; and
//! a version 1 snapshot (the history) restores the same state as the image.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;
use warren_core::message::Message;
use warren_core::queue::{Command, ConsumerKey, OwnerId, QueueConfig};
use warren_rpc::log as pb;

use super::queue_sm::{HISTORY_VERSION, QueueCore, apply_proposal, restore, snapshot_data};
use crate::convert::{IntoProto, QueueOp};

fn proposal(now_ms: u64, op: QueueOp<Message>) -> Bytes {
    let p = pb::Proposal {
        now_ms,
        command: Some(pb::proposal::Command::Queue(op.into_proto())),
    };
    p.encode_to_vec().into()
}

fn message(n: u8, expiration_ms: Option<u64>) -> Message {
    Message {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::new(),
        body: Bytes::from(vec![n; usize::from(n % 7)]),
        persistent: true,
        priority: n % 3,
        expiration_ms,
    }
}

fn command() -> impl Strategy<Value = Command<Message>> {
    let owner = (1u64..4).prop_map(OwnerId);
    let key = (1u64..4).prop_map(|o| ConsumerKey::new(OwnerId(o), "c"));
    let ids = prop::collection::vec(1u64..12, 0..3);
    prop_oneof![
        4 => (any::<u8>(), prop::option::of(0u64..50)).prop_map(|(n, exp)| {
            let msg = message(n, exp);
            Command::Enqueue { size: msg.size(), expiration_ms: exp, priority: msg.priority, msg }
        }),
        1 => (key.clone(), 0u32..3, any::<bool>()).prop_map(|(consumer, prefetch, no_ack)| {
            Command::Subscribe { consumer, prefetch, no_ack, exclusive: false }
        }),
        1 => key.prop_map(|consumer| Command::Cancel { consumer }),
        1 => (owner.clone(), any::<bool>()).prop_map(|(owner, no_ack)| Command::Get { owner, no_ack }),
        2 => (owner.clone(), ids.clone()).prop_map(|(owner, msg_ids)| Command::Settle { owner, msg_ids }),
        1 => (owner.clone(), ids.clone()).prop_map(|(owner, msg_ids)| Command::Return { owner, msg_ids }),
        1 => (owner.clone(), ids).prop_map(|(owner, msg_ids)| Command::Discard { owner, msg_ids }),
        1 => owner.prop_map(|owner| Command::OwnerDown { owner }),
        1 => Just(Command::Tick),
        1 => Just(Command::Purge),
    ]
}

fn config() -> impl Strategy<Value = QueueConfig> {
    (
        prop::option::of(1u64..40),
        prop::option::of(1u64..6),
        any::<bool>(),
    )
        .prop_map(|(ttl, max_length, dead_letter)| QueueConfig {
            message_ttl_ms: ttl,
            max_length,
            dead_letter,
            delivery_limit: Some(2),
            ..QueueConfig::default()
        })
}

/// The log: a Create, then the commands, each 0..10 ms after the previous.
fn log() -> impl Strategy<Value = Vec<Bytes>> {
    let steps = prop::collection::vec((0u64..10, command()), 0..60);
    (config(), steps).prop_map(|(config, steps)| {
        let create = QueueOp::Create {
            vhost: "/".into(),
            name: "q".into(),
            config,
        };
        let mut now = 1_000;
        let mut out = vec![proposal(now, create)];
        for (dt, cmd) in steps {
            now += dt;
            out.push(proposal(now, QueueOp::Command(cmd)));
        }
        out
    })
}

fn apply_range(core: &mut QueueCore, log: &[Bytes], range: std::ops::Range<usize>) {
    for i in range {
        let index = u64::try_from(i).expect("small") + 1;
        apply_proposal(core, index, log[i].clone(), false, None).expect("applies");
    }
}

proptest! {
    #[test]
    fn snapshots_plus_suffix_equal_full_replay(
        log in log(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..3),
    ) {
        let mut full = QueueCore::default();
        apply_range(&mut full, &log, 0..log.len());

        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(log.len() + 1)).collect();
        cuts.sort_unstable();
        let mut core = QueueCore::default();
        let mut at = 0;
        for cut in cuts {
            apply_range(&mut core, &log, at..cut);
            // Restart from the snapshot taken here.
            let image = core.state.as_ref().map(|s| s.image());
            core = restore(snapshot_data(image)).expect("restores");
            at = cut;
        }
        apply_range(&mut core, &log, at..log.len());
        prop_assert!(core.state.is_some());
        prop_assert_eq!(core.state, full.state);
    }
}

/// The version 1 snapshot of `log`: its Create, then every command as the
/// machine kept it (an Enqueue's payload is its entry's log index).
fn history_snapshot(log: &[Bytes]) -> Bytes {
    let mut snap = pb::QueueSnapshot {
        format_version: HISTORY_VERSION,
        ..pb::QueueSnapshot::default()
    };
    for (i, entry) in log.iter().enumerate() {
        let index = u64::try_from(i).expect("small") + 1;
        let p = pb::Proposal::decode(entry.clone()).expect("a proposal");
        let Some(pb::proposal::Command::Queue(mut cmd)) = p.command else {
            panic!("a queue command");
        };
        match cmd.command.as_mut() {
            Some(pb::queue_command::Command::Create(c)) => snap.create = Some(c.clone()),
            Some(pb::queue_command::Command::Enqueue(e)) => {
                e.payload = Some(pb::queue_command::enqueue::Payload::LogIndex(index));
                snap.commands.push(applied(index, p.now_ms, cmd));
            }
            _ => snap.commands.push(applied(index, p.now_ms, cmd)),
        }
    }
    snap.encode_to_vec().into()
}

fn applied(index: u64, now_ms: u64, cmd: pb::QueueCommand) -> pb::AppliedQueueCommand {
    pb::AppliedQueueCommand {
        index,
        now_ms,
        command: Some(cmd),
    }
}

proptest! {
    #[test]
    fn history_snapshots_restore_the_same_state(log in log()) {
        let mut full = QueueCore::default();
        apply_range(&mut full, &log, 0..log.len());
        let core = restore(history_snapshot(&log)).expect("restores");
        prop_assert!(core.state.is_some());
        prop_assert_eq!(core.state, full.state);
    }
}

#[test]
fn unknown_snapshot_versions_are_refused() {
    let snap = pb::QueueSnapshot {
        format_version: 3,
        ..pb::QueueSnapshot::default()
    };
    let err = restore(snap.encode_to_vec().into()).err().expect("refused");
    assert!(err.to_string().contains("format version 3"), "{err}");
}

#[test]
fn a_snapshot_before_the_create_restores_no_state() {
    let core = restore(snapshot_data(None)).expect("restores");
    assert!(core.state.is_none());
}
