//! The metadata state as a list of commands that rebuild it from empty.
//!
//! `MetaState` keeps its maps private (and derives its routers), so the
//! snapshot is not an image of its fields but the shortest command log that
//! recreates it through the public accessors: vhosts, users, permissions,
//! exchanges, queues, then bindings (whose ends must exist). Rebuilding
//! goes through `MetaState::apply`, the same code as the log, so a snapshot
//! can never hold a state the machine could not reach.

use warren_core::meta::{MetaCommand, MetaError, MetaState};

/// The commands that rebuild `state` from `MetaState::new()`.
pub fn to_commands(state: &MetaState) -> Vec<MetaCommand> {
    let vhosts: Vec<String> = state.vhosts().map(str::to_owned).collect();
    let mut out: Vec<MetaCommand> = vhosts
        .iter()
        .map(|name| MetaCommand::AddVhost { name: name.clone() })
        .collect();
    for user in state.users() {
        out.push(MetaCommand::PutUser { user: user.clone() });
    }
    for user in state.users() {
        for vhost in &vhosts {
            if let Some(permission) = state.permission(&user.name, vhost) {
                out.push(MetaCommand::SetPermissions {
                    user: user.name.clone(),
                    vhost: vhost.clone(),
                    permission,
                });
            }
        }
    }
    for vhost in &vhosts {
        // The default and amq.* exchanges come with AddVhost and cannot be
        // declared (nor deleted) by anyone.
        let declared = state
            .exchanges(vhost)
            .filter(|x| !x.name.is_empty() && !x.name.starts_with("amq."));
        out.extend(declared.map(|def| MetaCommand::DeclareExchange {
            vhost: vhost.clone(),
            def: def.clone(),
        }));
        out.extend(state.queues(vhost).map(|def| MetaCommand::DeclareQueue {
            vhost: vhost.clone(),
            def: def.clone(),
        }));
    }
    for vhost in &vhosts {
        out.extend(
            state
                .bindings(vhost)
                .into_iter()
                .map(|binding| MetaCommand::Bind {
                    vhost: vhost.clone(),
                    binding,
                }),
        );
    }
    out
}

/// Applies `commands` to an empty state; any refusal means the snapshot is
/// not one `to_commands` wrote.
pub fn rebuild(commands: Vec<MetaCommand>) -> Result<MetaState, MetaError> {
    let mut state = MetaState::new();
    for cmd in commands {
        state.apply(cmd)?;
    }
    Ok(state)
}
