//! Several `warren serve` processes forming one cluster on 127.0.0.1, for
//! tests that kill nodes with SIGKILL and check what the others did.
//!
//! Each node gets its own data directory, an ephemeral AMQP port, and a
//! cluster port chosen up front (the peer table names every node's cluster
//! address before any starts). The nodes start together: each one waits
//! for a majority of its peers before it listens for clients.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;

use crate::process::WarrenProcess;

/// A cluster of `warren serve` children. Dropping it kills them all.
pub struct Cluster {
    pub nodes: Vec<WarrenProcess>,
    /// Each node's cluster gRPC address (`--cluster-listen`), by id - 1.
    pub cluster_addrs: Vec<SocketAddr>,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) and waits until each listens for
    /// clients; `None` (after printing why) when the tests run against an
    /// external broker.
    pub async fn start(test: &str, n: u64) -> anyhow::Result<Option<Cluster>> {
        Self::start_with(test, n, &[]).await
    }

    /// [`Self::start`] with more `serve` arguments for every node.
    pub async fn start_with(test: &str, n: u64, extra: &[&str]) -> anyhow::Result<Option<Cluster>> {
        if std::env::var(crate::BROKER_ENV).is_ok() {
            eprintln!("SKIPPED {test}: needs warren nodes it can start and kill");
            return Ok(None);
        }
        let ports = free_ports(n as usize)?;
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let starts = ports.iter().enumerate().map(|(i, addr)| {
            let mut args: Vec<OsString> = vec![
                "--node-id".into(),
                (i + 1).to_string().into(),
                "--peers".into(),
                peers.clone().into(),
                "--cluster-listen".into(),
                addr.to_string().into(),
            ];
            args.extend(extra.iter().map(OsString::from));
            WarrenProcess::start_with(test, args)
        });
        let mut nodes = Vec::new();
        for (i, started) in futures::future::join_all(starts)
            .await
            .into_iter()
            .enumerate()
        {
            let node = started
                .with_context(|| format!("starting node {}", i + 1))?
                .context("external broker")?;
            nodes.push(node);
        }
        Ok(Some(Cluster {
            nodes,
            cluster_addrs: ports,
        }))
    }

    /// The `serve` arguments of a node new to the cluster, id
    /// `nodes.len() + 1`, on a free cluster port: its peer table names
    /// every node so far and itself. Its start (`WarrenProcess::start_with`)
    /// returns once it listens, which is once it was added (`warren ctl
    /// cluster add-node`); [`Self::joined`] then takes it in.
    pub fn new_node_args(&self) -> anyhow::Result<(u64, SocketAddr, Vec<OsString>)> {
        let id = self.nodes.len() as u64 + 1;
        let addr = free_ports(1)?[0];
        let peers = self
            .cluster_addrs
            .iter()
            .chain(std::iter::once(&addr))
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let args = vec![
            "--node-id".into(),
            id.to_string().into(),
            "--peers".into(),
            peers.into(),
            "--cluster-listen".into(),
            addr.to_string().into(),
        ];
        Ok((id, addr, args))
    }

    /// Takes in the node started with [`Self::new_node_args`].
    pub fn joined(&mut self, node: WarrenProcess, addr: SocketAddr) {
        self.nodes.push(node);
        self.cluster_addrs.push(addr);
    }

    /// Node `id` (1-based, as in the peer table).
    pub fn node(&self, id: u64) -> &WarrenProcess {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut WarrenProcess {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Runs `warren ctl --node <node id's cluster address> ARGS…` and
    /// returns its stdout (an error with its stderr if it failed).
    pub async fn ctl(&self, id: u64, args: &[&str]) -> anyhow::Result<String> {
        let addr = self.cluster_addrs[(id - 1) as usize].to_string();
        let out = tokio::process::Command::new(crate::process::warren_bin()?)
            .args(["ctl", "--node", &addr])
            .args(args)
            .output()
            .await
            .context("running warren ctl")?;
        anyhow::ensure!(
            out.status.success(),
            "warren ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (bound together, then
/// released: another process could take one in between, which the start
/// would then report).
fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| l.local_addr().context("a free port"))
        .collect()
}
