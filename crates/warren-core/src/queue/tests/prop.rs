//! Random command sequences. Every step is checked against a model that
//! tracks each message by what the machine said (replies and effects):
//! - every enqueued message is exactly one of ready, checked out, settled,
//!   dropped/dead-lettered; checked-out sets match the model per owner;
//! - ready messages are in delivery order: highest priority (capped at
//!   x-max-priority, all equal without it) first, within a priority
//!   requeued before never-delivered, then by id; every delivery, get and
//!   drop-head takes the head of that order, expiry only the heads of the
//!   highest priority present (and only once due); redelivered = requeued;
//! - no consumer exceeds its prefetch or its granted credit;
//! - deliveries go only to subscribed consumers (the active one under SAC);
//! - dispatch is complete: messages are ready only if no consumer can take one;
//! - byte counters match the sizes of held messages.
//!
//! And snapshot + replayed suffix == full replay, the snapshot being the
//! state's image (`QueueState::image` / `from_image`), which round-trips
//! after every command.

use proptest::prelude::*;

use super::super::*;

use super::model::{Log, Model, OWNERS, P};

/// A generated step; ids to settle are picked from what the owner holds
/// when the step runs, so most settles are valid.
#[derive(Clone, Debug)]
pub(super) enum Op {
    Enqueue {
        exp: Option<u64>,
        priority: u8,
    },
    Subscribe {
        owner: u64,
        tag: u8,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
    },
    SubscribeCredit {
        owner: u64,
        tag: u8,
        no_ack: bool,
    },
    Cancel {
        owner: u64,
        tag: u8,
    },
    Credit {
        owner: u64,
        tag: u8,
        n: u32,
    },
    Get {
        owner: u64,
        no_ack: bool,
    },
    Settle {
        kind: u8,
        owner: u64,
        picks: Vec<usize>,
        bogus: bool,
    },
    OwnerDown {
        owner: u64,
    },
    Purge,
    Tick,
    UpdateConfig {
        config: QueueConfig,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let owner = 1..=OWNERS;
    prop_oneof![
        5 => (proptest::option::of(0u64..40), 0u8..8)
            .prop_map(|(exp, priority)| Op::Enqueue { exp, priority }),
        2 => (owner.clone(), 0u8..2, 0u32..3, any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(owner, tag, prefetch, no_ack, exclusive)| Op::Subscribe { owner, tag, prefetch, no_ack, exclusive }),
        1 => (owner.clone(), 0u8..2, proptest::bool::weighted(0.2))
            .prop_map(|(owner, tag, no_ack)| Op::SubscribeCredit { owner, tag, no_ack }),
        1 => (owner.clone(), 0u8..2).prop_map(|(owner, tag)| Op::Cancel { owner, tag }),
        1 => (owner.clone(), 0u8..2, 0u32..3).prop_map(|(owner, tag, n)| Op::Credit { owner, tag, n }),
        2 => (owner.clone(), any::<bool>()).prop_map(|(owner, no_ack)| Op::Get { owner, no_ack }),
        4 => (0u8..3, owner.clone(), proptest::collection::vec(0usize..8, 0..3), proptest::bool::weighted(0.05))
            .prop_map(|(kind, owner, picks, bogus)| Op::Settle { kind, owner, picks, bogus }),
        1 => owner.prop_map(|owner| Op::OwnerDown { owner }),
        1 => Just(Op::Purge),
        1 => Just(Op::Tick),
        2 => (0u64..30).prop_map(|ms| Op::Advance { ms }),
        1 => config().prop_map(|config| Op::UpdateConfig { config }),
    ]
}

fn config() -> impl Strategy<Value = QueueConfig> {
    let overflow = prop_oneof![
        Just(Overflow::DropHead),
        Just(Overflow::RejectPublish),
        Just(Overflow::RejectPublishDlx)
    ];
    (
        proptest::option::of(0u64..50),
        proptest::option::of(0u64..6),
        proptest::option::of(0u64..40),
        overflow,
        proptest::option::of(0u32..3),
        proptest::bool::weighted(0.3),
        proptest::option::of(0u8..6),
    )
        .prop_map(
            |(ttl, max_len, max_bytes, overflow, limit, sac, max_priority)| QueueConfig {
                message_ttl_ms: ttl,
                max_length: max_len,
                max_length_bytes: max_bytes,
                overflow,
                // Dropped messages must be visible to the model.
                dead_letter: true,
                delivery_limit: limit,
                single_active_consumer: sac,
                max_priority,
            },
        )
}

fn run_model(config: QueueConfig, ops: &[Op]) -> (Log, QueueState<P>) {
    let mut model = Model::new(&config);
    let mut state = QueueState::new(config);
    let mut log = Log::new();
    for op in ops {
        if let Some(cmd) = model.command(op, &state) {
            model.step(cmd, &mut state, &mut log);
        }
    }
    (log, state)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold(config in config(), ops in proptest::collection::vec(op(), 0..150)) {
        run_model(config, &ops);
    }

    #[test]
    fn snapshot_plus_suffix_equals_full_replay(
        config in config(),
        ops in proptest::collection::vec(op(), 1..150),
        split in any::<proptest::sample::Index>(),
    ) {
        let (log, full) = run_model(config.clone(), &ops);
        let k = split.index(log.len() + 1);
        let mut prefix = QueueState::new(config);
        for (meta, cmd, out) in &log[..k] {
            prop_assert_eq!(&apply(meta, cmd.clone(), &mut prefix), out);
        }
        // What a replicated driver stores and restarts from.
        let mut snapshot = QueueState::from_image(prefix.image());
        prop_assert_eq!(&snapshot, &prefix);
        for (meta, cmd, out) in &log[k..] {
            prop_assert_eq!(&apply(meta, cmd.clone(), &mut snapshot), out);
        }
        prop_assert_eq!(snapshot, full);
    }

    #[test]
    fn image_roundtrips_after_every_command(
        config in config(),
        ops in proptest::collection::vec(op(), 0..150),
    ) {
        let mut model = Model::new(&config);
        let mut state = QueueState::new(config).with_name("v", "q");
        let mut log = Log::new();
        for op in &ops {
            if let Some(cmd) = model.command(op, &state) {
                model.step(cmd, &mut state, &mut log);
                prop_assert_eq!(&QueueState::from_image(state.image()), &state);
            }
        }
    }
}
