//! The broker in a cluster: following the metadata other nodes commit and
//! the queue logs this node holds, dropping what nodes judged down leave
//! behind, and reaching queues held by other nodes (reading a durable one
//! here, taking messages they hand over).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use warren_core::message::Message;
use warren_core::meta::{MetaCommand, MetaState, QueueDef};
use warren_core::queue::{OwnerId, QueueConfig};

use super::backend::{Backend, BackendChange, ChangeFeed, QueueLog};
use super::queue::{DeleteIf, QueueHandle, QueueRequest};
use super::{Broker, MetaWrite, QueueKey, events, remote};
use crate::error::{AmqpError, code};

/// Follows the backend's changes (a cluster's metadata, this node's logs)
/// until the broker is gone.
pub(super) async fn follow(broker: Weak<Broker>, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        {
            let Some(b) = broker.upgrade() else { return };
            b.sync_with_backend().await;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Tells every queue which nodes are down, each time that changes (and
/// again every [`NODES_DOWN_REPEAT`] while any is, for queues whose
/// replica arrived later).
pub(super) async fn watch_nodes_down(
    broker: Weak<Broker>,
    mut down: tokio::sync::watch::Receiver<std::collections::BTreeSet<u64>>,
) {
    loop {
        let nodes = Arc::new(down.borrow_and_update().clone());
        if !nodes.is_empty() {
            let Some(b) = broker.upgrade() else { return };
            b.drop_exclusive_queues_of(&nodes).await;
            let queues: Vec<QueueHandle> = b.queues.read().values().cloned().collect();
            drop(b);
            for q in queues {
                q.send_now(QueueRequest::NodesDown {
                    nodes: nodes.clone(),
                });
            }
        }
        let repeat = tokio::time::sleep(NODES_DOWN_REPEAT);
        tokio::select! {
            changed = down.changed() => if changed.is_err() { return },
            () = repeat, if !nodes.is_empty() => {}
        }
    }
}

/// See [`watch_nodes_down`].
const NODES_DOWN_REPEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a declaration of a queue made on another node waits for the
/// queue's log to appear on this one.
const REMOTE_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a node may take to start reading a durable queue held by
/// other nodes (see `Broker::attach`).
const ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// In a cluster: the broker's side of following the node's changes
/// (guarded by `meta_serial`). Each change is applied as it comes — a
/// metadata command to the broker's copy, a queue log arriving or leaving
/// to `logs` — and the queues it touches are reconciled with their actors,
/// one by one: declaring the 10 000th queue costs what the first did.
#[derive(Default)]
pub(super) struct Follow {
    /// The backend's changes (`None`: not in a cluster).
    feed: Option<Box<dyn ChangeFeed>>,
    /// The queue logs on this node, by queue.
    logs: BTreeMap<QueueKey, Arc<dyn QueueLog>>,
    /// Queues whose actor may no longer fit their metadata or their log
    /// here, left for [`Broker::sync_with_backend`].
    dirty: BTreeSet<QueueKey>,
    /// Every queue is (at first, and after the metadata was replaced).
    all_dirty: bool,
}

impl Follow {
    pub(super) fn new(
        feed: Box<dyn ChangeFeed>,
        logs: BTreeMap<QueueKey, Arc<dyn QueueLog>>,
    ) -> Self {
        Follow {
            feed: Some(feed),
            logs,
            dirty: BTreeSet::new(),
            all_dirty: true,
        }
    }
}

/// The queues `cmd` may create or remove, read from the metadata before it
/// is applied.
fn queues_touched(meta: &MetaState, cmd: &MetaCommand, into: &mut BTreeSet<QueueKey>) {
    match cmd {
        MetaCommand::DeclareQueue { vhost, def } => {
            into.insert((vhost.clone(), def.name.clone()));
        }
        MetaCommand::DeleteQueue { vhost, name } => {
            into.insert((vhost.clone(), name.clone()));
        }
        MetaCommand::DeleteVhost { name } => {
            into.extend(meta.queues(name).map(|d| (name.clone(), d.name.clone())));
        }
        MetaCommand::DeleteExclusiveOf { connection } => {
            for vhost in meta.vhosts() {
                into.extend(
                    meta.queues(vhost)
                        .filter(|d| d.exclusive_owner == Some(*connection))
                        .map(|d| (vhost.to_string(), d.name.clone())),
                );
            }
        }
        MetaCommand::AddVhost { .. }
        | MetaCommand::PutUser { .. }
        | MetaCommand::DeleteUser { .. }
        | MetaCommand::SetPermissions { .. }
        | MetaCommand::DeclareExchange { .. }
        | MetaCommand::DeleteExchange { .. }
        | MetaCommand::Bind { .. }
        | MetaCommand::Unbind { .. } => {}
    }
}

impl Broker {
    /// In a cluster: takes in the changes the node made since the last
    /// call (committed on any node): metadata commands are applied to the
    /// copy here, queue logs arriving or leaving are noted, and the queues
    /// they touch are marked for [`Self::sync_with_backend`]. Cheap when
    /// nothing changed.
    pub(super) fn absorb(&self, follow: &mut Follow) {
        let Follow {
            feed: Some(feed),
            logs,
            dirty,
            all_dirty,
        } = follow
        else {
            return;
        };
        let mut meta: Option<MetaWrite<'_>> = None;
        while let Some(change) = feed.next_change() {
            match change {
                BackendChange::Meta(cmd) => {
                    let m = meta.get_or_insert_with(|| self.meta_write());
                    queues_touched(m, &cmd, dirty);
                    // The node applied the same command to the same state:
                    // the answer here is the one it got.
                    let _ = m.apply(cmd);
                }
                BackendChange::MetaReplaced(state) => {
                    **meta.get_or_insert_with(|| self.meta_write()) = *state;
                    *all_dirty = true;
                }
                BackendChange::LogHere(log) => {
                    let key = log.identity();
                    logs.insert(key.clone(), log);
                    dirty.insert(key);
                }
                BackendChange::LogGone { id, vhost, name } => {
                    let key = (vhost, name);
                    if logs.get(&key).is_some_and(|l| l.id() == id) {
                        logs.remove(&key);
                    }
                    dirty.insert(key);
                }
            }
        }
    }

    /// In a cluster: brings this broker up to the committed metadata (made
    /// on any node) and the queue logs this node holds. Queues that
    /// appeared with a log here get an actor; queues that went have theirs
    /// stopped (which deletes the log here). Only the queues the changes
    /// since the last call touched are looked at.
    async fn sync_with_backend(&self) {
        let Some(backend) = &self.backend else { return };
        let stopped: Vec<QueueHandle> = {
            let mut follow = self.meta_serial.lock().await;
            self.absorb(&mut follow);
            let mut dirty = std::mem::take(&mut follow.dirty);
            let meta = self.meta.read();
            let mut queues = self.queues.write();
            if std::mem::take(&mut follow.all_dirty) {
                // Every queue in the registry or in the metadata.
                dirty.extend(queues.keys().cloned());
                for vhost in meta.vhosts() {
                    dirty.extend(
                        meta.queues(vhost)
                            .map(|d| (vhost.to_string(), d.name.clone())),
                    );
                }
            }
            if dirty.is_empty() {
                return;
            }
            let mut stopped = Vec::new();
            for key in dirty {
                let def = meta.queue(&key.0, &key.1);
                self.reconcile(backend, &follow.logs, &mut queues, key, def, &mut stopped);
            }
            stopped
        };
        // Routes cached under the old actors are stale.
        self.topology_changed();
        for h in stopped {
            // Out of the registry: the actor only stops and deletes its log
            // here (the queue went on another node); a proxy just stops.
            let (reply, _) = tokio::sync::oneshot::channel();
            h.send_now(QueueRequest::Delete {
                cond: DeleteIf::default(),
                reply,
            });
        }
    }

    /// Fits the actor of the queue `key` to its definition (`None`: the
    /// queue is gone) and to whether its log is here: an actor on the log
    /// here, a proxy where it is held elsewhere, a handle on the owner node
    /// for another node's exclusive queue. Actors taken out go to `stopped`.
    fn reconcile(
        &self,
        backend: &Arc<dyn Backend>,
        logs: &BTreeMap<QueueKey, Arc<dyn QueueLog>>,
        queues: &mut BTreeMap<QueueKey, QueueHandle>,
        key: QueueKey,
        def: Option<&QueueDef>,
        stopped: &mut Vec<QueueHandle>,
    ) {
        let Some(def) = def else {
            if let Some(h) = queues.remove(&key) {
                stopped.push(h);
            }
            return;
        };
        let vhost = key.0.as_str();
        let proxy = match queues.get(&key) {
            Some(h)
                if !h.is_remote()
                    && self.clustered()
                    && self.logged(def)
                    && !logs.contains_key(&key) =>
            {
                // Its log left this node (a reader that did not join after
                // all): a proxy again.
                tracing::info!(%vhost, queue = %def.name, "the queue's log left this node: a proxy takes its actor's place");
                let h = self.replica_proxy(backend, vhost, &def.name);
                if let Some(old) = queues.insert(key, h.clone()) {
                    old.send_now(QueueRequest::Handover { to: h });
                }
                return;
            }
            Some(h) if !h.is_remote() => return,
            Some(_) => true,
            None => false,
        };
        if let Some(owner) = def.exclusive_owner {
            let node = OwnerId(owner).node();
            if node != self.config.node_id && !proxy {
                let h = remote::spawn(
                    backend.clone(),
                    remote::Holder::Node(node),
                    vhost,
                    &def.name,
                    self.config.queue_mailbox,
                );
                queues.insert(key, h);
            }
            return;
        }
        if !self.logged(def) {
            // Not in a cluster: a transient queue's actor is here already.
            return;
        }
        if let Some(log) = logs.get(&key) {
            // The log is here (a replica, or this node reads it): an
            // actor, in place of the proxy.
            let config = QueueConfig::from_arguments(&def.arguments).unwrap_or_default();
            let h = self.spawn_queue_with(vhost, def, config, Some(log.clone()));
            if let Some(old) = queues.insert(key, h) {
                stopped.push(old);
            }
        } else if !proxy && self.clustered() {
            // Held by other nodes only: publishes are handed to one of them.
            let h = self.replica_proxy(backend, vhost, &def.name);
            queues.insert(key, h);
        }
    }

    /// In a cluster: the actor of a queue declared on another node, once
    /// its log is here. A queue this node holds no replica of is read here
    /// (see [`Self::attach`]); an exclusive queue of another node's
    /// connection cannot be used from here: that is refused rather than
    /// shadowed.
    pub(super) async fn wait_for_local_queue(
        &self,
        vhost: &str,
        def: &QueueDef,
    ) -> Result<QueueHandle, AmqpError> {
        let key = (vhost.to_string(), def.name.clone());
        let deadline = tokio::time::Instant::now() + REMOTE_QUEUE_WAIT;
        loop {
            let found = self.queues.read().get(&key).cloned();
            if let Some(h) = found {
                if !h.is_remote() {
                    return Ok(h);
                }
                if self.logged(def) {
                    return self.attach(vhost, &def.name).await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AmqpError::new(
                    code::NOT_IMPLEMENTED,
                    format!(
                        "queue '{}' in vhost '{vhost}' lives in the memory of another node \
                         of the cluster: connect to that node",
                        def.name
                    ),
                ));
            }
            if self.logged(def) {
                self.sync_with_backend().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A proxy of the queue `vhost`/`name` held by other nodes: publishes
    /// are handed to one holding a replica.
    fn replica_proxy(&self, backend: &Arc<dyn Backend>, vhost: &str, name: &str) -> QueueHandle {
        remote::spawn(
            backend.clone(),
            remote::Holder::Replica,
            vhost,
            name,
            self.config.queue_mailbox,
        )
    }

    /// In a cluster: this node stops reading the log of `vhost`/`name`,
    /// unused here for long (asked by its actor, `actor`, which stops): it
    /// leaves the queue's group (see the backend) and a proxy takes the
    /// actor's place, as on a node that never read it. `None` if the actor
    /// is no longer the registered one or the node could not leave.
    pub(super) async fn release_reader(
        &self,
        vhost: &str,
        name: &str,
        actor: &QueueHandle,
    ) -> Option<QueueHandle> {
        let backend = self.backend.as_ref()?;
        let _serial = self.meta_serial.lock().await;
        let key = (vhost.to_string(), name.to_string());
        if !self.queues.read().get(&key).is_some_and(|h| h.same(actor)) {
            return None;
        }
        match backend.detach_queue(vhost, name).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::warn!(%vhost, queue = %name, error = %e, "could not stop reading an unused queue");
                return None;
            }
        }
        let proxy = self.replica_proxy(backend, vhost, name);
        self.queues.write().insert(key, proxy.clone());
        tracing::info!(%vhost, queue = %name, "unused here: no longer reading the queue's log on this node");
        Some(proxy)
    }

    /// In a cluster: makes this node read the log of the queue
    /// `vhost`/`name` that it holds no replica of (it joins the queue's
    /// group as a reader; see the backend), and returns the local actor
    /// that then takes the place of the proxy. Consumers and gets are
    /// served here from then on, exactly as on a replica.
    pub(super) async fn attach(&self, vhost: &str, name: &str) -> Result<QueueHandle, AmqpError> {
        let unavailable = |why: String| {
            AmqpError::new(
                code::NOT_FOUND,
                format!(
                    "queue '{name}' in vhost '{vhost}' is held by other nodes of the cluster, \
                     and none could be reached: {why}"
                ),
            )
        };
        let Some(backend) = &self.backend else {
            return Err(unavailable("no cluster".into()));
        };
        let key = (vhost.to_string(), name.to_string());
        // A queue just declared on another node may not be found at once
        // (its group starts after the declaration is committed), and one
        // whose replica here is just starting needs no reading: retried.
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        let mut attached = false;
        let mut why = String::new();
        loop {
            self.sync_with_backend().await;
            match self.queues.read().get(&key) {
                Some(h) if !h.is_remote() => return Ok(h.clone()),
                Some(_) => {}
                None => {
                    return Err(AmqpError::new(
                        code::NOT_FOUND,
                        format!("no queue '{name}' in vhost '{vhost}'"),
                    ));
                }
            }
            if !attached {
                match backend.attach_queue(vhost, name).await {
                    Ok(()) => attached = true,
                    Err(e) => why = e.to_string(),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                if attached {
                    why = "its log did not reach this node".into();
                }
                return Err(unavailable(why));
            }
            let pause = if attached { 50 } else { 250 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    /// The queue, as [`Self::queue_for`] finds it, to consume from, get
    /// from, purge or delete: a durable queue held by other nodes is read
    /// here first (see [`Self::attach`]).
    pub async fn queue_to_use(
        &self,
        vhost: &str,
        name: &str,
        conn: u64,
    ) -> Result<QueueHandle, AmqpError> {
        let h = self.queue_for(vhost, name, conn)?;
        if h.is_remote()
            && self
                .meta
                .read()
                .queue(vhost, name)
                .is_some_and(|d| self.logged(d))
        {
            return self.attach(vhost, name).await;
        }
        Ok(h)
    }

    /// A message handed over by another node for a queue this node holds
    /// (see [`remote`]); true once the queue took it.
    pub async fn publish_here(&self, vhost: &str, queue: &str, msg: Message) -> bool {
        let Some(h) = self
            .queues
            .read()
            .get(&(vhost.to_string(), queue.to_string()))
            .cloned()
        else {
            return false;
        };
        if h.is_remote() {
            // Not held here either: never hand a message on twice.
            return false;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let confirm = events::ConfirmTo {
            tx,
            channel: 0,
            seq: 0,
        };
        let req = QueueRequest::Publish {
            msg: Arc::new(msg),
            confirm: Some(confirm),
        };
        if !h.send(req).await {
            return false;
        }
        loop {
            match rx.recv().await {
                Some(events::ConnEvent::Confirm { ok, .. }) => return ok,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Nodes judged down: their connections are gone, and with them their
    /// exclusive queues; their transient (non-durable) queues go too (as
    /// in RabbitMQ, which deletes a node's transient queues when it goes
    /// down). Every live node asks; the first deletion wins and the others
    /// find nothing.
    async fn drop_exclusive_queues_of(&self, nodes: &std::collections::BTreeSet<u64>) {
        let orphans: Vec<(String, String)> = {
            let m = self.meta.read();
            let mut v = Vec::new();
            for vhost in m.vhosts() {
                for def in m.queues(vhost) {
                    let node = def.exclusive_owner.map(|o| OwnerId(o).node()).or(def.home);
                    if node.is_some_and(|n| nodes.contains(&n)) {
                        v.push((vhost.to_string(), def.name.clone()));
                    }
                }
            }
            v
        };
        for (vhost, name) in orphans {
            tracing::info!(%vhost, queue = %name, "deleting the exclusive or transient queue of a node judged down");
            let _ = self.commit(MetaCommand::DeleteQueue { vhost, name }).await;
        }
    }
}
