//! The durable backend the broker talks to (DESIGN.md: warren-amqp talks to
//! the broker core through a `Backend` trait). warren-amqp depends only on
//! codec and core; the binary plugs in warren-cluster's Raft groups on
//! RocksDB. Without a backend the broker keeps everything in memory.
//!
//! - Metadata: every change is committed through [`Backend::meta_apply`]
//!   before the broker's own copy applies it, so both see the same sequence.
//! - Durable queues: each is a [`QueueLog`], the replicated driver of the
//!   pure `warren_core::queue` machine. Commands are submitted in order and
//!   answered in order, once committed (fsynced) and applied; the payloads
//!   in replies and effects are log indexes, read back with [`QueueLog::body`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use warren_core::message::Message;
use warren_core::meta::{MetaCommand, MetaError, MetaReply, MetaState};
use warren_core::queue::{Command, Effect, QueueConfig, QueueState, Reply};

/// The backend could not commit: nothing was decided (disk full, failed
/// fsync, no quorum, shutting down).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// A change the backend made (in a cluster: committed on any node, or a
/// queue log arriving on or leaving this node), in the order made; see
/// [`Backend::follow`].
pub enum BackendChange {
    /// A committed metadata command, applied by the backend (whatever it
    /// answered): the broker applies it to its copy too.
    Meta(MetaCommand),
    /// The metadata replaced as a whole.
    MetaReplaced(Box<MetaState>),
    /// A queue log is on this node now.
    LogHere(Arc<dyn QueueLog>),
    /// The queue log `id` of `vhost`/`name` left this node.
    LogGone {
        id: u64,
        vhost: String,
        name: String,
    },
}

/// The changes the backend makes, read as they come.
pub trait ChangeFeed: Send {
    /// The next change made since the last one read, if any; never waits
    /// (see [`Backend::changes`] for when to look).
    fn next_change(&mut self) -> Option<BackendChange>;
}

/// What [`Backend::follow`] starts from: the metadata and the queue logs
/// here now, and every change after them.
pub struct Following {
    pub meta: MetaState,
    pub logs: Vec<Arc<dyn QueueLog>>,
    pub feed: Box<dyn ChangeFeed>,
}

/// What a committed queue command answers.
pub type Applied = Result<(Reply<u64>, Vec<Effect<u64>>), StoreError>;

/// One durable queue's replicated log and applied state.
pub trait QueueLog: Send + Sync + 'static {
    /// The log's id in the store.
    fn id(&self) -> u64;

    /// The queue's vhost and name (as created).
    fn identity(&self) -> (String, String);

    /// Submits `cmd` behind every command submitted before it — at the
    /// call, not when the future is first polled; the future gives the
    /// answer once the command is committed and applied. Answers arrive in
    /// submission order.
    fn submit(&self, cmd: Command<Message>) -> BoxFuture<'static, Applied>;

    /// The message enqueued at log `index`.
    fn body(&self, index: u64) -> Result<Message, StoreError>;

    /// Reads the applied state (what every committed command produced).
    fn with_state(&self, f: &mut dyn FnMut(&QueueState<u64>));

    /// Whether the log is replicated across nodes. Then the answers of
    /// [`Self::submit`] carry only the effects addressed to no owner, and
    /// those addressed to this node's owners (`OwnerId::node`) come from
    /// [`Self::local_effects`] as the log is applied here, whichever node
    /// submitted the command. Owners of other nodes are theirs.
    fn clustered(&self) -> bool {
        false
    }

    /// In a cluster: the effects addressed to this node's owners, in log
    /// order (taken once, by the queue's actor).
    fn local_effects(&self) -> Option<mpsc::UnboundedReceiver<Vec<Effect<u64>>>> {
        None
    }

    /// Whether this node leads the log (time-driven work such as expiry
    /// ticks is submitted by the leader's node only).
    fn leads(&self) -> bool {
        true
    }

    /// In a cluster: yields whenever [`Self::leads`] may have changed (taken
    /// by the queue's actor, which otherwise need not wake to look); ends
    /// when the log stops.
    fn leader_changes(&self) -> Option<futures::stream::BoxStream<'static, ()>> {
        None
    }

    /// In a cluster: whether this node only reads the log (it holds no
    /// replica: it joined to serve consumers here; see
    /// [`Backend::attach_queue`] and [`Backend::detach_queue`]).
    fn reads_only(&self) -> bool {
        false
    }
}

/// The node's durable store of metadata and queues.
pub trait Backend: Send + Sync + 'static {
    /// The committed metadata, as the node holds it at boot.
    fn meta(&self) -> MetaState;

    /// Commits a metadata change: the outer error is the backend's (nothing
    /// decided), the inner one the machine's answer.
    fn meta_apply(
        &self,
        cmd: MetaCommand,
    ) -> BoxFuture<'static, Result<Result<MetaReply, MetaError>, StoreError>>;

    /// Every durable queue the node holds (at boot).
    fn queues(&self) -> Vec<Arc<dyn QueueLog>>;

    /// Creates the log of a new durable queue, replicated on `replicas`
    /// nodes (`None`: the backend's default; `x-quorum-initial-group-size`,
    /// or 1 for a classic queue).
    fn create_queue(
        &self,
        vhost: &str,
        name: &str,
        config: QueueConfig,
        replicas: Option<u32>,
    ) -> BoxFuture<'static, Result<Arc<dyn QueueLog>, StoreError>>;

    /// Stops a queue's log and deletes everything it stored (on this node).
    fn delete_queue(&self, log: Arc<dyn QueueLog>) -> BoxFuture<'static, Result<(), StoreError>>;

    /// In a cluster: a counter that moves whenever the committed metadata
    /// does (changes made on any node) or a queue log appears on or leaves
    /// this node; the broker then reads what [`Self::follow`] feeds it.
    /// `None` for a node on its own, whose changes all come through this
    /// broker.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// In a cluster: the committed metadata and the queue logs on this node
    /// now, and a feed of every change to either from now on, so that the
    /// broker keeps its copy change by change (a copy of the whole metadata
    /// per change costs a cluster of 10 000 queues dearly). `None` for a
    /// node on its own.
    fn follow(&self) -> Option<Following> {
        None
    }

    /// In a cluster: the nodes currently judged down. Their channels are
    /// gone with them: what their consumers held goes back to the queues.
    fn nodes_down(&self) -> Option<tokio::sync::watch::Receiver<BTreeSet<u64>>> {
        None
    }

    /// In a cluster: makes this node apply the log of the durable queue
    /// `vhost`/`name`, so that its consumers can be served here: a node
    /// holding no replica joins the queue's group as a reader. Returns once
    /// the log is here (then [`Self::queues`] lists it). Cheap when it is.
    fn attach_queue(&self, vhost: &str, name: &str) -> BoxFuture<'static, Result<(), StoreError>> {
        let _ = (vhost, name);
        Box::pin(async { Err(StoreError("no cluster: every queue is here".into())) })
    }

    /// In a cluster: stops reading the log of `vhost`/`name` here (undoes
    /// [`Self::attach_queue`]: the node leaves the queue's group and its
    /// copy here is deleted). False if this node does not only read it.
    fn detach_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        let _ = (vhost, name);
        Box::pin(async { Ok(false) })
    }

    /// In a cluster: a node holding a replica of the durable queue
    /// `vhost`/`name` (its leader if known), to hand publishes to.
    fn locate_queue(
        &self,
        vhost: &str,
        name: &str,
    ) -> BoxFuture<'static, Result<Option<u64>, StoreError>> {
        let _ = (vhost, name);
        Box::pin(async { Ok(None) })
    }

    /// In a cluster: hands `msgs` to the queue `vhost`/`queue` that `node`
    /// holds (see [`crate::Broker::publish_here`] on the other side), in
    /// order and in one call; for each, true once that queue took it.
    /// `None`: `node` could not be reached, so nothing was handed over.
    fn publish_to(
        &self,
        node: u64,
        vhost: &str,
        queue: &str,
        msgs: Vec<Arc<Message>>,
    ) -> BoxFuture<'static, Result<Option<Vec<bool>>, StoreError>> {
        let _ = (vhost, queue, msgs);
        Box::pin(async move { Err(StoreError(format!("no cluster: cannot reach node {node}"))) })
    }
}
