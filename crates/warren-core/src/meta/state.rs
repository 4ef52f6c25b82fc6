//! The metadata state and the `apply` entry point.
//!
//! One `MetaState` per node, changed only by [`MetaState::apply`] in log
//! order, so every node holds the same metadata and routes locally. All
//! maps are ordered (`BTreeMap`), so iteration, replies and exports are the
//! same on every replica.

use std::collections::{BTreeMap, BTreeSet};

use crate::routing::{DirectIndex, FanoutSet, HeadersIndex, Router, TopicTrie};
use crate::value::Table;

use super::auth::{CompiledPermission, PasswordHash, Permission, User};
use super::command::{MetaCommand, MetaReply};
use super::error::MetaError;
use super::types::{Destination, ExchangeDef, ExchangeKind, QueueDef};

/// Vhosts, users, permissions, exchanges, queues and bindings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetaState {
    pub(crate) vhosts: BTreeMap<String, Vhost>,
    pub(crate) users: BTreeMap<String, User>,
    /// user -> vhost -> permission.
    pub(crate) permissions: BTreeMap<String, BTreeMap<String, CompiledPermission>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Vhost {
    /// Includes the default exchange `""`, kept so lookups can return it.
    pub(crate) exchanges: BTreeMap<String, Exchange>,
    pub(crate) queues: BTreeMap<String, QueueDef>,
    /// destination -> source exchanges with at least one binding to it, so
    /// that deleting a queue or exchange finds its bindings without a scan.
    pub(crate) incoming: BTreeMap<Destination, BTreeSet<String>>,
}

/// An exchange with its bindings (as source) and the router derived from them.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) def: ExchangeDef,
    /// (destination, routing key) -> the argument tables bound under it.
    pub(crate) bindings: BTreeMap<(Destination, String), Vec<Table>>,
    pub(crate) router: Router<Destination>,
}

/// The router is derived from `bindings`, so it does not take part in
/// equality (its internal layout may depend on insertion order).
impl PartialEq for Exchange {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def && self.bindings == other.bindings
    }
}

impl Exchange {
    pub(crate) fn new(def: ExchangeDef) -> Self {
        let router = match def.kind {
            ExchangeKind::Direct => Router::Direct(DirectIndex::default()),
            ExchangeKind::Fanout => Router::Fanout(FanoutSet::default()),
            ExchangeKind::Topic => Router::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Router::Headers(HeadersIndex::default()),
        };
        Exchange {
            def,
            bindings: BTreeMap::new(),
            router,
        }
    }
}

/// The exchanges every vhost starts with (RabbitMQ 3.10), as
/// (name, type, internal). `""` is the default exchange.
const PREDECLARED: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
    ("amq.topic", ExchangeKind::Topic, false),
];

pub(crate) fn no_vhost(name: &str) -> MetaError {
    MetaError::not_found(format!("no vhost '{name}'"))
}

impl MetaState {
    /// An empty state: no vhosts, no users.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a fresh broker starts with: vhost `/`, user guest/guest
    /// (administrator) with full permissions on `/`. The salt is fixed
    /// because the core draws no random numbers; guest is meant for
    /// loopback use only (enforced by the frontend).
    pub fn with_defaults() -> Self {
        let mut s = Self::new();
        let guest = User {
            name: "guest".to_owned(),
            password_hash: PasswordHash::new_sha256("guest", *b"wrn1"),
            tags: vec!["administrator".to_owned()],
        };
        s.add_vhost("/");
        s.users.insert(guest.name.clone(), guest);
        let full = CompiledPermission::new(&Permission::full());
        if let Ok(p) = full {
            s.permissions
                .entry("guest".to_owned())
                .or_default()
                .insert("/".to_owned(), p);
        }
        s
    }

    /// Applies one command. Either the whole command takes effect or, on
    /// error, the state is unchanged.
    pub fn apply(&mut self, cmd: MetaCommand) -> Result<MetaReply, MetaError> {
        match cmd {
            MetaCommand::AddVhost { name } => Ok(self.add_vhost(&name)),
            MetaCommand::DeleteVhost { name } => self.delete_vhost(&name),
            MetaCommand::PutUser { user } => {
                self.users.insert(user.name.clone(), user);
                Ok(MetaReply::Ok)
            }
            MetaCommand::DeleteUser { name } => self.delete_user(&name),
            MetaCommand::SetPermissions {
                user,
                vhost,
                permission,
            } => self.set_permissions(user, vhost, &permission),
            MetaCommand::DeclareExchange { vhost, def } => self.declare_exchange(&vhost, def),
            MetaCommand::DeleteExchange {
                vhost,
                name,
                if_unused,
            } => self.delete_exchange(&vhost, &name, if_unused),
            MetaCommand::DeclareQueue { vhost, def } => self.declare_queue(&vhost, def),
            MetaCommand::DeleteQueue { vhost, name } => self.delete_queue(&vhost, &name),
            MetaCommand::Bind { vhost, binding } => self.bind(&vhost, binding),
            MetaCommand::Unbind { vhost, binding } => self.unbind(&vhost, &binding),
            MetaCommand::DeleteExclusiveOf { connection } => {
                Ok(self.delete_exclusive_of(connection))
            }
        }
    }

    fn add_vhost(&mut self, name: &str) -> MetaReply {
        if self.vhosts.contains_key(name) {
            return MetaReply::Existed;
        }
        let mut vhost = Vhost::default();
        for (x, kind, internal) in PREDECLARED {
            let def = ExchangeDef {
                name: (*x).to_owned(),
                kind: *kind,
                durable: true,
                auto_delete: false,
                internal: *internal,
                arguments: Table::new(),
            };
            vhost.exchanges.insert(def.name.clone(), Exchange::new(def));
        }
        self.vhosts.insert(name.to_owned(), vhost);
        MetaReply::Created
    }

    fn delete_vhost(&mut self, name: &str) -> Result<MetaReply, MetaError> {
        let vhost = self.vhosts.remove(name).ok_or_else(|| no_vhost(name))?;
        for perms in self.permissions.values_mut() {
            perms.remove(name);
        }
        self.permissions.retain(|_, p| !p.is_empty());
        let queues = vhost
            .queues
            .into_keys()
            .map(|q| (name.to_owned(), q))
            .collect();
        Ok(MetaReply::Deleted(queues))
    }

    fn delete_user(&mut self, name: &str) -> Result<MetaReply, MetaError> {
        if self.users.remove(name).is_none() {
            return Err(MetaError::not_found(format!("no user '{name}'")));
        }
        self.permissions.remove(name);
        Ok(MetaReply::Ok)
    }

    fn set_permissions(
        &mut self,
        user: String,
        vhost: String,
        p: &Permission,
    ) -> Result<MetaReply, MetaError> {
        if !self.users.contains_key(&user) {
            return Err(MetaError::not_found(format!("no user '{user}'")));
        }
        if !self.vhosts.contains_key(&vhost) {
            return Err(no_vhost(&vhost));
        }
        let compiled = CompiledPermission::new(p)?;
        self.permissions
            .entry(user)
            .or_default()
            .insert(vhost, compiled);
        Ok(MetaReply::Ok)
    }

    pub(crate) fn vhost_mut(&mut self, name: &str) -> Result<&mut Vhost, MetaError> {
        self.vhosts.get_mut(name).ok_or_else(|| no_vhost(name))
    }

    pub fn vhost_exists(&self, vhost: &str) -> bool {
        self.vhosts.contains_key(vhost)
    }

    /// All vhost names, sorted.
    pub fn vhosts(&self) -> impl Iterator<Item = &str> {
        self.vhosts.keys().map(String::as_str)
    }

    /// An exchange by name; `""` is the default exchange (a durable direct).
    pub fn exchange(&self, vhost: &str, name: &str) -> Option<&ExchangeDef> {
        Some(&self.vhosts.get(vhost)?.exchanges.get(name)?.def)
    }

    /// Every exchange of a vhost, including `""` and the `amq.*` ones, sorted by name.
    pub fn exchanges(&self, vhost: &str) -> impl Iterator<Item = &ExchangeDef> {
        self.vhosts
            .get(vhost)
            .into_iter()
            .flat_map(|v| v.exchanges.values().map(|x| &x.def))
    }

    pub fn queue(&self, vhost: &str, name: &str) -> Option<&QueueDef> {
        self.vhosts.get(vhost)?.queues.get(name)
    }

    /// Every queue of a vhost, sorted by name.
    pub fn queues(&self, vhost: &str) -> impl Iterator<Item = &QueueDef> {
        self.vhosts
            .get(vhost)
            .into_iter()
            .flat_map(|v| v.queues.values())
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user, sorted by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// A user's permission entry in a vhost, if any.
    pub fn permission(&self, user: &str, vhost: &str) -> Option<Permission> {
        Some(self.permissions.get(user)?.get(vhost)?.permission())
    }
}
