//! The cluster under test: `warren serve` processes, each in its own
//! network namespace on a bridge (when the runner is root), or on
//! 127.0.0.1 ports (no partitions then), and the faults done to them.
//!
//! ```text
//!   root namespace (runner, clients)  10.201.0.1 ── bridge wrnbr0
//!        ├── veth ── netns wrn1: warren node 1 on 10.201.0.11
//!        ├── veth ── netns wrn2: warren node 2 on 10.201.0.12
//!        └── veth ── netns wrn3: warren node 3 on 10.201.0.13
//! ```
//!
//! A partition drops, in each namespace, every packet arriving from the
//! other side (iptables INPUT DROP), so both directions go silent the way
//! a cut cable does: no reset, no error, only timeouts. Clients in the
//! root namespace still reach every node, as in a real split where the
//! clients sit with one side.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

const BRIDGE: &str = "wrnbr0";
const BRIDGE_IP: &str = "10.201.0.1";
const NS_PREFIX: &str = "wrn";
/// Debian's libfaketime (package `libfaketime`): preloaded into a node, it
/// shifts every clock it reads by the offset in the node's `faketime` file.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn node_ip(id: u64) -> String {
    format!("10.201.0.{}", 10 + id)
}

fn ns_name(id: u64) -> String {
    format!("{NS_PREFIX}{id}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Killed,
    Stopped,
}

pub struct Node {
    pub id: u64,
    pub amqp: SocketAddr,
    pub cluster: SocketAddr,
    http: SocketAddr,
    /// The node's own folder (a tmpfs mount when disks can be filled).
    dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub state: NodeState,
    pub runs: u32,
    pub max_rss_kib: u64,
    /// Why the node died when no step killed it.
    pub unexpected_exit: Option<String>,
    /// Exit codes of the runs that ended on their own.
    pub exit_codes: Vec<Option<i32>>,
    /// Seconds the node's clocks were moved (with `faketime`).
    clock_offset: i64,
}

impl Node {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    netns: bool,
    tmpfs: bool,
    /// Nodes run under libfaketime (a scenario moves their clocks).
    faketime: bool,
    bin: PathBuf,
    peers: String,
    /// Namespaces with a netem qdisc to remove on heal.
    slowed: Vec<u64>,
    /// Environment given to every `warren serve` (the scenario's settings).
    pub serve_env: Vec<(String, String)>,
    /// The stall shim (`stall.c`, built by [`build_stall_shim`]), preloaded
    /// into every node when a scenario stalls disks.
    pub stall_lib: Option<PathBuf>,
}

/// Builds the stall shim into `dir` with the system's C compiler.
pub fn build_stall_shim(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("stall.c");
    std::fs::write(&src, include_str!("stall.c"))?;
    let lib = dir.join("libwarren_stall.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .context("running cc")?;
    anyhow::ensure!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(lib)
}

/// Runs a command to completion; fails with its stderr.
fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn in_ns(id: u64, args: &[&str]) -> anyhow::Result<()> {
    let ns = ns_name(id);
    let mut all = vec!["netns", "exec", ns.as_str()];
    all.extend_from_slice(args);
    sh("ip", &all)
}

/// Removes whatever an earlier run (perhaps killed) left behind.
pub fn clean_netns() {
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(NS_PREFIX) && name[NS_PREFIX.len()..].parse::<u64>().is_ok() {
                let _ = sh("ip", &["netns", "del", name]);
            }
        }
    }
    let _ = sh("ip", &["link", "del", BRIDGE]);
    for id in 1..=16 {
        let _ = sh("ip", &["link", "del", &format!("{NS_PREFIX}h{id}")]);
    }
    while sh(
        "iptables",
        &["-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
    )
    .is_ok()
    {}
}

/// Whether this process may make namespaces (root, with `ip`).
pub fn netns_available() -> bool {
    let probe = format!("{NS_PREFIX}probe");
    sh("ip", &["netns", "add", &probe]).is_ok() && sh("ip", &["netns", "del", &probe]).is_ok()
}

/// Whether the kernel can delay packets (tc netem; needs `sch_netem`).
/// Sets the root qdisc of node `id`'s link (`tc qdisc replace … root`
/// followed by `qdisc`); `heal` removes it.
fn set_qdisc(id: u64, qdisc: &[&str]) -> anyhow::Result<()> {
    let dev = format!("{NS_PREFIX}p{id}");
    let mut args = vec!["tc", "qdisc", "replace", "dev", &dev, "root"];
    args.extend_from_slice(qdisc);
    in_ns(id, &args)
}

pub fn netem_available() -> bool {
    let probe = format!("{NS_PREFIX}probe");
    if sh("ip", &["netns", "add", &probe]).is_err() {
        return false;
    }
    let ok = sh(
        "ip",
        &[
            "netns", "exec", &probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
            "1ms",
        ],
    )
    .is_ok();
    let _ = sh("ip", &["netns", "del", &probe]);
    ok
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Cluster {
    /// Lays out `n` nodes under `dir` (namespaces and tmpfs mounts made
    /// here); nothing runs until [`Self::start_all`].
    pub fn new(
        bin: &Path,
        dir: &Path,
        n: u64,
        netns: bool,
        disk_mib: Option<u64>,
        faketime: bool,
    ) -> anyhow::Result<Cluster> {
        if netns {
            clean_netns();
            sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
            sh(
                "ip",
                &["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", BRIDGE],
            )?;
            sh("ip", &["link", "set", BRIDGE, "up"])?;
            // Docker sets FORWARD's policy to DROP, and bridged packets go
            // through it: let the bridge's own traffic pass.
            let _ = sh(
                "iptables",
                &["-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
            );
        }
        let mut nodes = Vec::new();
        for id in 1..=n {
            let (amqp, cluster, http) = if netns {
                let ip = node_ip(id);
                let ns = ns_name(id);
                let host = format!("{NS_PREFIX}h{id}");
                let peer = format!("{NS_PREFIX}p{id}");
                sh("ip", &["netns", "add", &ns])?;
                sh(
                    "ip",
                    &[
                        "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &ns,
                    ],
                )?;
                sh("ip", &["link", "set", &host, "master", BRIDGE, "up"])?;
                in_ns(
                    id,
                    &["ip", "addr", "add", &format!("{ip}/24"), "dev", &peer],
                )?;
                in_ns(id, &["ip", "link", "set", &peer, "up"])?;
                in_ns(id, &["ip", "link", "set", "lo", "up"])?;
                let at = |port: u16| -> anyhow::Result<SocketAddr> {
                    Ok(format!("{ip}:{port}").parse()?)
                };
                (at(5672)?, at(25672)?, at(15672)?)
            } else {
                (free_port()?, free_port()?, free_port()?)
            };
            let node_dir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&node_dir)?;
            if let Some(mib) = disk_mib {
                let size = format!("size={mib}m");
                sh(
                    "mount",
                    &["-t", "tmpfs", "-o", &size, "tmpfs", path_str(&node_dir)?],
                )?;
            }
            nodes.push(Node {
                id,
                amqp,
                cluster,
                http,
                log: dir.join(format!("n{id}.log")),
                dir: node_dir,
                child: None,
                state: NodeState::Killed,
                runs: 0,
                max_rss_kib: 0,
                unexpected_exit: None,
                exit_codes: Vec::new(),
                clock_offset: 0,
            });
        }
        let peers = nodes
            .iter()
            .map(|n| format!("{}@{}", n.id, n.cluster))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Cluster {
            nodes,
            netns,
            tmpfs: disk_mib.is_some(),
            faketime,
            bin: bin.to_owned(),
            peers,
            slowed: Vec::new(),
            serve_env: Vec::new(),
            stall_lib: None,
        })
    }

    pub fn node(&self, id: u64) -> anyhow::Result<&Node> {
        self.nodes
            .get((id as usize).wrapping_sub(1))
            .with_context(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        self.nodes
            .get_mut((id as usize).wrapping_sub(1))
            .with_context(|| format!("no node {id}"))
    }

    pub fn amqp_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.amqp).collect()
    }

    pub fn running(&self) -> Vec<u64> {
        self.ids_in(NodeState::Running)
    }

    pub fn ids_in(&self, state: NodeState) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.state == state)
            .map(|n| n.id)
            .collect()
    }

    /// Starts every node at once and waits until each accepts AMQP
    /// connections (a node listens only once the cluster has a leader).
    pub async fn start_all(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for &id in &ids {
            self.spawn(id)?;
        }
        for id in ids {
            self.wait_listening(id, timeout).await?;
        }
        Ok(())
    }

    /// Spawns node `id` (it must not be running).
    pub fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let peers = self.peers.clone();
        let netns = self.netns;
        let faketime = self.faketime;
        let serve_env = self.serve_env.clone();
        let stall_lib = self.stall_lib.clone();
        let node = self.node_mut(id)?;
        anyhow::ensure!(node.child.is_none(), "node {id} is running");
        node.runs += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        use std::io::Write as _;
        writeln!(log, "===== chaos: node {id} run {} =====", node.runs)?;
        let mut cmd = if netns {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns_name(id)]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(node.data())
            .args(["--node-id", &id.to_string(), "--peers", &peers])
            .args(["--cluster-listen", &node.cluster.to_string()])
            .args(["--amqp-listen", &node.amqp.to_string()])
            .args(["--http-listen", &node.http.to_string()])
            // The workload connects from the bridge, not from loopback.
            .args(["--loopback-users", "none"])
            .env(
                "WARREN_LOG",
                std::env::var("WARREN_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .envs(serve_env)
            .stdin(Stdio::null());
        let mut preload = Vec::new();
        if let Some(lib) = &stall_lib {
            preload.push(lib.display().to_string());
            cmd.env("WARREN_STALL_FILE", node.dir.join("stall"));
        }
        if faketime {
            preload.push(FAKETIME_LIB.to_owned());
        }
        if !preload.is_empty() {
            cmd.env("LD_PRELOAD", preload.join(":"));
        }
        if faketime {
            let file = node.dir.join("faketime");
            std::fs::write(&file, format!("{:+}\n", node.clock_offset))?;
            cmd.env("FAKETIME_TIMESTAMP_FILE", &file)
                // Re-read the offset every second, so a jump takes effect.
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        cmd.stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        node.child = Some(cmd.spawn().with_context(|| format!("spawning node {id}"))?);
        node.state = NodeState::Running;
        Ok(())
    }

    /// Polls node `id`'s AMQP port until it accepts a connection.
    pub async fn wait_listening(&mut self, id: u64, timeout: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        let addr = self.node(id)?.amqp;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(began.elapsed());
            }
            self.reap();
            if let Some(why) = &self.node(id)?.unexpected_exit {
                bail!("node {id} exited while starting: {why}");
            }
            if began.elapsed() > timeout {
                bail!("node {id} not listening on {addr} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL and wait for the process to be gone.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        if let Some(mut child) = node.child.take() {
            child
                .kill()
                .await
                .with_context(|| format!("kill -9 node {id}"))?;
        }
        node.state = NodeState::Killed;
        Ok(())
    }

    pub fn signal(&mut self, id: u64, stop: bool) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        let pid = node
            .pid()
            .with_context(|| format!("node {id} is not running"))?;
        sh(
            "kill",
            &[if stop { "-STOP" } else { "-CONT" }, &pid.to_string()],
        )?;
        node.state = if stop {
            NodeState::Stopped
        } else {
            NodeState::Running
        };
        Ok(())
    }

    /// Empties the data dir of a killed node.
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        anyhow::ensure!(node.child.is_none(), "wipe needs node {id} killed first");
        let data = node.data();
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        Ok(())
    }

    /// Drops every packet between the two sets of nodes.
    pub fn partition(&mut self, a: &[u64], b: &[u64]) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.netns,
            "partitions need network namespaces (run as root)"
        );
        for &x in a {
            for &y in b {
                if x != y {
                    in_ns(
                        x,
                        &["iptables", "-A", "INPUT", "-s", &node_ip(y), "-j", "DROP"],
                    )?;
                    in_ns(
                        y,
                        &["iptables", "-A", "INPUT", "-s", &node_ip(x), "-j", "DROP"],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Delays every packet node `id` sends by `ms` (tc netem).
    pub fn slow(&mut self, id: u64, ms: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.netns,
            "slow links need network namespaces (run as root)"
        );
        set_qdisc(id, &["netem", "delay", &format!("{ms}ms")])?;
        self.slowed.push(id);
        Ok(())
    }

    /// Makes node `id`'s link lossy and narrow: it drops `pct`% of the
    /// packets it receives (iptables' statistic match, no netem needed)
    /// and sends at most `kbit` kbit/s (a tbf qdisc: what does not fit
    /// waits in its queue, up to 300 ms, so the link is slow too).
    pub fn lossy(&mut self, id: u64, pct: u32, kbit: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.netns,
            "lossy links need network namespaces (run as root)"
        );
        let p = format!("{:.3}", f64::from(pct.min(100)) / 100.0);
        in_ns(
            id,
            &[
                "iptables",
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )?;
        let rate = format!("{kbit}kbit");
        set_qdisc(
            id,
            &["tbf", "rate", &rate, "burst", "32kbit", "latency", "300ms"],
        )?;
        self.slowed.push(id);
        Ok(())
    }

    /// Undoes every partition and slow link.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        if !self.netns {
            return Ok(());
        }
        for n in &self.nodes {
            in_ns(n.id, &["iptables", "-F", "INPUT"])?;
        }
        for id in std::mem::take(&mut self.slowed) {
            let dev = format!("{NS_PREFIX}p{id}");
            in_ns(id, &["tc", "qdisc", "del", "dev", &dev, "root"])?;
        }
        Ok(())
    }

    /// Fills node `id`'s data filesystem to the last byte (again: the
    /// node frees space as it deletes obsolete files, so the runner tops
    /// the filler up while the fault lasts).
    pub fn fill_disk(&mut self, id: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tmpfs,
            "fill-disk needs the node's data on its own tmpfs"
        );
        use std::io::Write as _;
        let path = self.node(id)?.dir.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let chunk = vec![0u8; 64 << 10];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                anyhow::ensure!(e.raw_os_error() == Some(28), "filling: {e}");
                return Ok(());
            }
        }
    }

    /// Makes node `id`'s fsyncs block (`on`) or return again.
    pub fn stall_disk(&mut self, id: u64, on: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.stall_lib.is_some(),
            "stall steps need the stall shim preloaded"
        );
        let flag = self.node(id)?.dir.join("stall");
        if on {
            std::fs::write(&flag, b"")?;
        } else if flag.exists() {
            std::fs::remove_file(&flag)?;
        }
        Ok(())
    }

    pub fn free_disk(&mut self, id: u64) -> anyhow::Result<()> {
        let path = self.node(id)?.dir.join("filler");
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    /// Moves node `id`'s clocks (wall and monotonic) by `secs`.
    pub fn jump_clock(&mut self, id: u64, secs: i64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.faketime,
            "clock steps need the nodes under libfaketime"
        );
        let node = self.node_mut(id)?;
        node.clock_offset += secs;
        std::fs::write(
            node.dir.join("faketime"),
            format!("{:+}\n", node.clock_offset),
        )?;
        Ok(())
    }

    /// Notes nodes that exited on their own, and samples every live
    /// node's resident memory.
    pub fn reap(&mut self) {
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    node.unexpected_exit = Some(format!("run {}: {status}", node.runs));
                    node.exit_codes.push(status.code());
                    node.child = None;
                    node.state = NodeState::Killed;
                }
                Ok(None) => {
                    if let Some(kib) = node.pid().and_then(rss_kib) {
                        node.max_rss_kib = node.max_rss_kib.max(kib);
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// `warren ctl cluster status --json` asked of node `id`.
    pub async fn status(&self, id: u64) -> anyhow::Result<serde_json::Value> {
        let addr = self.node(id)?.cluster.to_string();
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            Command::new(&self.bin)
                .args(["ctl", "--node", &addr, "cluster", "status", "--json"])
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("warren ctl on node {id} timed out"))??;
        anyhow::ensure!(
            out.status.success(),
            "warren ctl on node {id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Lines of the nodes' logs that report a panic.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for n in &self.nodes {
            if let Ok(text) = std::fs::read_to_string(&n.log) {
                for line in text.lines().filter(|l| l.contains("panicked at")) {
                    found.push(format!("node {}: {line}", n.id));
                }
            }
        }
        found
    }

    /// Kills every node and undoes namespaces and mounts (also on drop).
    pub fn teardown(&mut self) {
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                if let Some(pid) = child.id() {
                    let _ = sh("kill", &["-CONT", &pid.to_string()]);
                }
                let _ = child.start_kill();
            }
            n.child = None;
            if self.tmpfs {
                // The child may still be exiting: retry the unmount briefly.
                for _ in 0..50 {
                    if sh("umount", &[path_str(&n.dir).unwrap_or_default()]).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        self.tmpfs = false;
        if self.netns {
            clean_netns();
            self.netns = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("path is not UTF-8")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
