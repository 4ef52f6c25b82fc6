//! The metadata snapshot (the state as commands) rebuilds exactly the state
//! it was taken from, whatever sequence of commands led there.

use proptest::prelude::*;
use warren_cluster::meta_snapshot::{rebuild, to_commands};
use warren_core::meta::{
    BindingDef, Destination, ExchangeDef, ExchangeKind, MetaCommand, MetaState, PasswordHash,
    Permission, QueueDef, User,
};
use warren_core::value::{Table, Value};

fn pick(names: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop::sample::select(names).prop_map(str::to_owned)
}

fn vhost() -> impl Strategy<Value = String> {
    pick(&["/", "v1"])
}

fn args() -> impl Strategy<Value = Table> + Clone {
    prop_oneof![
        Just(Table::new()),
        Just(Table::from([(
            "x-match".to_owned(),
            Value::ShortString("any".into())
        )])),
        Just(Table::from([("k".to_owned(), Value::I32(7))])),
    ]
}

fn command() -> impl Strategy<Value = MetaCommand> {
    let xname = pick(&["x1", "x2", "x3"]);
    let qname = pick(&["q1", "q2", "q3"]);
    let kind = prop::sample::select(
        &[
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ][..],
    );
    let exchange =
        (xname.clone(), kind, any::<bool>()).prop_map(|(name, kind, auto_delete)| ExchangeDef {
            name,
            kind,
            durable: true,
            auto_delete,
            internal: false,
            arguments: Table::new(),
        });
    let queue = (qname.clone(), prop::option::of(1u64..3)).prop_map(|(name, owner)| QueueDef {
        name,
        durable: owner.is_none(),
        exclusive_owner: owner,
        auto_delete: false,
        arguments: Table::new(),
        home: None,
    });
    let dest = prop_oneof![
        qname.clone().prop_map(Destination::Queue),
        xname.clone().prop_map(Destination::Exchange),
    ];
    let binding = (
        xname.clone(),
        dest.boxed(),
        pick(&["", "a.b", "a.*", "#"]),
        args(),
    )
        .prop_map(
            |(source, destination, routing_key, arguments): (
                String,
                Destination,
                String,
                Table,
            )| BindingDef {
                source,
                destination,
                routing_key,
                arguments,
            },
        )
        .boxed();
    let user = pick(&["u1", "u2", "guest"]);
    prop_oneof![
        1 => vhost().prop_map(|name| MetaCommand::AddVhost { name }),
        1 => vhost().prop_map(|name| MetaCommand::DeleteVhost { name }),
        1 => (user.clone(), any::<[u8; 4]>()).prop_map(|(name, salt)| MetaCommand::PutUser {
            user: User { password_hash: PasswordHash::new_sha256("pw", salt), name, tags: vec![] },
        }),
        1 => user.clone().prop_map(|name| MetaCommand::DeleteUser { name }),
        1 => (user, vhost(), pick(&[".*", "^q", ""])).prop_map(|(user, vhost, re)| {
            MetaCommand::SetPermissions {
                user,
                vhost,
                permission: Permission { configure: re.clone(), write: re, read: ".*".into() },
            }
        }),
        3 => (vhost(), exchange).prop_map(|(vhost, def)| MetaCommand::DeclareExchange { vhost, def }),
        1 => (vhost(), xname).prop_map(|(vhost, name)| MetaCommand::DeleteExchange {
            vhost,
            name,
            if_unused: false,
        }),
        3 => (vhost(), queue).prop_map(|(vhost, def)| MetaCommand::DeclareQueue { vhost, def }),
        1 => (vhost(), qname).prop_map(|(vhost, name)| MetaCommand::DeleteQueue { vhost, name }),
        5 => (vhost(), binding.clone()).prop_map(|(vhost, binding)| MetaCommand::Bind { vhost, binding }),
        2 => (vhost(), binding).prop_map(|(vhost, binding)| MetaCommand::Unbind { vhost, binding }),
        1 => (1u64..3).prop_map(|connection| MetaCommand::DeleteExclusiveOf { connection }),
    ]
}

proptest! {
    #[test]
    fn snapshot_rebuilds_the_same_state(cmds in prop::collection::vec(command(), 0..60)) {
        let mut state = MetaState::with_defaults();
        for c in cmds {
            let _ = state.apply(c);
        }
        let rebuilt = rebuild(to_commands(&state));
        prop_assert_eq!(rebuilt, Ok(state));
    }
}

#[test]
fn an_empty_state_is_an_empty_snapshot() {
    assert!(to_commands(&MetaState::new()).is_empty());
    assert_eq!(rebuild(Vec::new()), Ok(MetaState::new()));
}
