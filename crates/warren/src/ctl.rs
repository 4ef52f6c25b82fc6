//! `warren ctl`: administers a running cluster through any node's cluster
//! gRPC address (`--cluster-listen`).

use std::fmt::Write as _;
use std::time::Duration;

use warren_cluster::ClusterReport;

/// `warren ctl …`
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The cluster gRPC address of any node (its `--cluster-listen`).
    #[arg(long, env = "WARREN_CTL_NODE", default_value = "127.0.0.1:25672")]
    pub node: String,
    /// Seconds to wait for the node's answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// About the cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// About one queue.
    #[command(subcommand)]
    Queue(QueueCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Makes a node holding a replica of the queue its leader (the nodes
    /// also rebalance leaders on their own, see `warren serve
    /// --rebalance-every`).
    MoveLeader {
        /// The queue's name.
        name: String,
        /// The node to lead it (one of its replicas).
        #[arg(long)]
        to: u64,
        #[arg(long, default_value = "/")]
        vhost: String,
    },
    /// Gives a node a replica of every quorum queue that has none there,
    /// as RabbitMQ's `rabbitmq-queues grow` (after `cluster add-node`,
    /// only queues declared from then on are placed on the new node). The
    /// node joins each queue as a learner and votes once caught up.
    Grow {
        /// The node to hold the new replicas.
        node: u64,
        /// `all` queues, or only those with an `even` number of replicas.
        #[arg(value_enum)]
        which: GrowWhich,
        /// Only the queues of this vhost (default: every vhost).
        #[arg(long)]
        vhost: Option<String>,
    },
}

/// Which queues `warren ctl queue grow` gives a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrowWhich {
    All,
    Even,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Members, the metadata leader, each node's health as the asked node
    /// sees it, and each queue's leader and replicas.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Adds a node to the cluster. Start it first with `warren serve
    /// --node-id ID --peers ...` naming itself and at least one member;
    /// it joins once added, and votes in the metadata once caught up
    /// (up to five voters). New queues are then placed on it too.
    AddNode {
        /// The new node's id (not used by any member).
        id: u64,
        /// The address its peers dial (its `--cluster-listen`), host:port.
        addr: String,
    },
    /// Removes a node that is down for good: it leaves the metadata, and
    /// each queue that had a replica on it drops it and starts a new one
    /// on another node. Refused while the node is up. To bring it back,
    /// empty its data directory and add it again.
    RemoveNode {
        /// The node's id.
        id: u64,
    },
}

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    match args.command {
        CtlCommand::Cluster(ClusterCommand::Status { json }) => {
            let report = warren_cluster::cluster_report(&args.node, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("asking {} for the cluster status: {e}", args.node))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
            } else {
                print!("{}", report_text(&report));
            }
            Ok(())
        }
        CtlCommand::Cluster(ClusterCommand::AddNode { id, addr }) => {
            let wait = timeout.max(Duration::from_secs(20));
            let recorded = warren_cluster::add_cluster_node(&args.node, id, &addr, wait)
                .await
                .map_err(|e| anyhow::anyhow!("adding node {id}: {e}"))?;
            println!("node {id} added at {recorded}");
            Ok(())
        }
        CtlCommand::Cluster(ClusterCommand::RemoveNode { id }) => {
            let wait = timeout.max(Duration::from_secs(20));
            warren_cluster::remove_cluster_node(&args.node, id, wait)
                .await
                .map_err(|e| anyhow::anyhow!("removing node {id}: {e}"))?;
            println!("node {id} removed");
            Ok(())
        }
        CtlCommand::Queue(QueueCommand::Grow { node, which, vhost }) => {
            // Every queue is joined in turn; each may take a few seconds.
            let wait = timeout.max(Duration::from_secs(600));
            let even = which == GrowWhich::Even;
            let r =
                warren_cluster::grow_cluster_queues(&args.node, node, even, vhost.as_deref(), wait)
                    .await
                    .map_err(|e| anyhow::anyhow!("growing queues onto node {node}: {e}"))?;
            println!(
                "node {node}: {} queues grown, {} already had a replica there, {} skipped (odd number of replicas), {} failed",
                r.grown,
                r.already,
                r.skipped,
                r.failed.len()
            );
            for f in &r.failed {
                println!("failed: {f}");
            }
            anyhow::ensure!(
                r.failed.is_empty(),
                "{} queues were not grown",
                r.failed.len()
            );
            Ok(())
        }
        CtlCommand::Queue(QueueCommand::MoveLeader { name, to, vhost }) => {
            // The move itself may take up to 10 s.
            let wait = timeout.max(Duration::from_secs(15));
            let leader = warren_cluster::move_queue_leader(&args.node, &vhost, &name, to, wait)
                .await
                .map_err(|e| anyhow::anyhow!("moving the leader of queue '{name}': {e}"))?;
            println!("queue {name} vhost {vhost} leader {leader}");
            anyhow::ensure!(
                leader == to,
                "queue '{name}' is led by node {leader}, not {to}"
            );
            Ok(())
        }
    }
}

fn ids(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn or_none(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// The report as text: one line per node, then one per queue.
pub fn report_text(r: &ClusterReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "asked node: {}", r.node_id);
    let _ = writeln!(
        out,
        "metadata: leader {} voters [{}] learners [{}]",
        or_none(r.meta_leader),
        ids(&r.meta_voters),
        ids(&r.meta_learners)
    );
    for n in &r.nodes {
        let health = match (n.reachable, n.member, n.down) {
            (_, _, true) => "down",
            (true, true, false) => "up",
            (true, false, false) => "up, not joined",
            (false, _, false) => "unreachable",
        };
        let _ = writeln!(out, "node {} {} {health}", n.node_id, n.address);
    }
    for q in &r.queues {
        let _ = writeln!(
            out,
            "queue {} vhost {} group {} leader {} replicas [{}] applied {} messages {} unacked {}",
            q.name,
            q.vhost,
            q.group,
            or_none(q.leader),
            ids(&q.members),
            or_none(q.applied_index),
            q.messages,
            q.unacked
        );
        if !q.learners.is_empty() {
            // The line above ended with a newline: append to it.
            out.pop();
            let _ = writeln!(out, " learners [{}]", ids(&q.learners));
        }
        if !q.readers.is_empty() {
            out.pop();
            let _ = writeln!(out, " readers [{}]", ids(&q.readers));
        }
    }
    out
}

fn report_json(r: &ClusterReport) -> serde_json::Value {
    serde_json::json!({
        "asked_node": r.node_id,
        "metadata": {
            "leader": r.meta_leader,
            "voters": r.meta_voters,
            "learners": r.meta_learners,
        },
        "nodes": r.nodes.iter().map(|n| serde_json::json!({
            "id": n.node_id,
            "address": n.address,
            "reachable": n.reachable,
            "member": n.member,
            "down": n.down,
        })).collect::<Vec<_>>(),
        "queues": r.queues.iter().map(|q| serde_json::json!({
            "vhost": q.vhost,
            "name": q.name,
            "group": q.group,
            "leader": q.leader,
            "replicas": q.members,
            "applied_index": q.applied_index,
            "messages": q.messages,
            "unacked": q.unacked,
            "learners": q.learners,
            "readers": q.readers,
        })).collect::<Vec<_>>(),
    })
}
