//! `warren ctl queue grow NODE all|even`: gives a node a replica of every
//! quorum queue that has none there, as RabbitMQ's `rabbitmq-queues grow`
//! does (typically after `warren ctl cluster add-node`: existing queues
//! keep their members, only new ones are placed on the added node).
//!
//! The node to grow onto does the work, queue by queue: it starts an
//! empty replica (or keeps the one it reads with) and asks the queue's
//! leader to add it as a learner; the leader's repair loop makes it a
//! voter once its replica caught up (`raft::repair::promote_caught_up`).
//!
//! ```text
//!   ctl ─▶ any node ─(forwarded once)─▶ node N: for each quorum queue
//!        without a replica on N ─▶ StartReplica here ─▶ AddReader{replica}
//!        to the leader ─▶ learner ─(caught up)─▶ voter
//! ```

use std::time::Duration;

use warren_storage::LogStore;

use super::Node;
use crate::ClusterError;
use crate::net::{GrowReport, Joining, Net};

/// How long the node first asked waits for the grown node's answer.
const GROW_WAIT: Duration = Duration::from_secs(600);

enum Grew {
    Yes,
    Already,
    Skipped,
}

impl<S: LogStore> Node<S> {
    /// Gives `node` a replica of every quorum queue (of `vhost`, or of
    /// every vhost) that has none there; with `even_only`, only of those
    /// with an even number of voters. Asked of another node, the request
    /// is sent on to `node` once (`forwarded`).
    pub async fn grow_queues(
        &self,
        node: u64,
        even_only: bool,
        vhost: Option<&str>,
        forwarded: bool,
    ) -> Result<GrowReport, ClusterError> {
        let net = self.net()?.clone();
        if node != self.inner.node_id {
            if forwarded {
                return Err(ClusterError::Config(format!(
                    "asked to grow queues onto node {node}, but this is node {}",
                    self.inner.node_id
                )));
            }
            if net.addr(node).is_none() {
                return Err(ClusterError::Config(format!(
                    "node {node} is not a member of the cluster"
                )));
            }
            return net
                .grow_queues(node, even_only, vhost, GROW_WAIT)
                .await
                .map_err(|e| ClusterError::Transport(e.to_string()));
        }
        let queues: Vec<(String, String)> = self.with_meta(|m| {
            m.vhosts()
                .filter(|v| vhost.is_none_or(|want| want == *v))
                .flat_map(|v| {
                    m.queues(v)
                        // Quorum queues only: a classic or transient queue
                        // is a group of one, an exclusive one its owner's.
                        .filter(|q| q.exclusive_owner.is_none() && q.declared_replicas() != Some(1))
                        .map(move |q| (v.to_owned(), q.name.clone()))
                })
                .collect()
        });
        let mut report = GrowReport::default();
        for (vhost, name) in queues {
            match self.grow_queue(&net, &vhost, &name, even_only).await {
                Ok(Grew::Yes) => report.grown += 1,
                Ok(Grew::Already) => report.already += 1,
                Ok(Grew::Skipped) => report.skipped += 1,
                Err(e) => report.failed.push(format!("{vhost}/{name}: {e}")),
            }
        }
        tracing::info!(
            grown = report.grown,
            already = report.already,
            skipped = report.skipped,
            failed = report.failed.len(),
            "queues grown onto this node"
        );
        Ok(report)
    }

    /// Makes this node a replica of `vhost`/`name` (see the module doc).
    async fn grow_queue(
        &self,
        net: &std::sync::Arc<Net>,
        vhost: &str,
        name: &str,
        even_only: bool,
    ) -> Result<Grew, ClusterError> {
        let me = self.inner.node_id;
        let existing = self.local_queue(vhost, name);
        if let Some(q) = &existing
            && q.has_member(me)
            && !q.readers().contains(&me)
        {
            return Ok(Grew::Already);
        }
        let found = self
            .find_queue(vhost, name)
            .await?
            .ok_or_else(|| ClusterError::Config("no node answers for the queue".to_owned()))?;
        if found.voters.contains(&me) {
            // A voter here without a replica: its leader repairs it.
            return Ok(Grew::Already);
        }
        if even_only && found.voters.len() % 2 == 1 {
            return Ok(Grew::Skipped);
        }
        self.join_here(net, (vhost, name), existing, &found, Joining::Replica)
            .await?;
        tracing::info!(group = found.group, queue = %name, %vhost, "joined the queue as a replica");
        Ok(Grew::Yes)
    }
}
