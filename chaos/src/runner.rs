//! Runs one scenario with one seed: starts the cluster, runs the workload
//! through the fault steps, undoes every fault, then checks.
//!
//! ```text
//!  start nodes ─▶ declare queues ─▶ workload on ─▶ steps (faults, waits)
//!      ─▶ restore (heal, SIGCONT, free disks, restart killed)
//!      ─▶ recovered? (every queue led, every publisher confirming)
//!      ─▶ stop publishing ─▶ drain ─▶ replicas agree? ─▶ history checks
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::check::{self, Counts, Verdict};
use crate::cluster::{self, Cluster, NodeState};
use crate::scenario::{Scenario, Step, Target};
use crate::workload::{self, Workload};

const START_TIMEOUT: Duration = Duration::from_secs(180);
const DRAIN_QUIET: Duration = Duration::from_secs(30);
const AGREE_TIMEOUT: Duration = Duration::from_secs(60);
/// A run that takes longer than this is stuck somewhere (it fails).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Options {
    pub bin: PathBuf,
    pub work: PathBuf,
    pub netns: bool,
    pub keep: bool,
}

pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub faults: Vec<String>,
    pub counts: Counts,
    pub verdicts: Vec<Verdict>,
    /// Slowest recovery of every publisher after any fault.
    pub recover: Option<Duration>,
    pub skipped: Option<String>,
    pub elapsed: Duration,
    /// Where the nodes' logs are (kept when the run failed).
    pub dir: PathBuf,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.skipped.is_some() || self.verdicts.iter().all(|v| v.ok)
    }
}

struct Run<'a> {
    scenario: &'a Scenario,
    cluster: Cluster,
    rng: StdRng,
    /// The nodes the last targeted step acted on.
    last: Vec<u64>,
    filled: Vec<u64>,
    stalled: Vec<u64>,
    faults: Vec<String>,
    fault_times: Vec<Instant>,
}

pub async fn run(scenario: &Scenario, seed: u64, opts: &Options) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let dir = opts.work.join(format!("{}-{seed}", scenario.name));
    let mut outcome = Outcome {
        scenario: scenario.name.clone(),
        seed,
        faults: Vec::new(),
        counts: Counts::default(),
        verdicts: Vec::new(),
        recover: None,
        skipped: None,
        elapsed: Duration::ZERO,
        dir: dir.clone(),
        errors: Vec::new(),
    };
    if scenario.needs_netns() && !opts.netns {
        outcome.skipped = Some("needs network namespaces (root)".into());
        return Ok(outcome);
    }
    if scenario.steps.iter().any(|s| matches!(s, Step::Slow(..))) && !cluster::netem_available() {
        outcome.skipped = Some("the kernel has no tc netem (sch_netem)".into());
        return Ok(outcome);
    }
    if scenario.needs_faketime() && !std::path::Path::new(cluster::FAKETIME_LIB).exists() {
        outcome.skipped = Some("needs libfaketime (Debian package libfaketime)".into());
        return Ok(outcome);
    }
    if scenario.needs_stall()
        && std::process::Command::new("cc")
            .arg("--version")
            .output()
            .is_err()
    {
        outcome.skipped = Some("needs a C compiler (cc) to build the stall shim".into());
        return Ok(outcome);
    }
    if scenario.needs_tmpfs() && !opts.netns {
        outcome.skipped = Some("needs root to mount a tmpfs".into());
        return Ok(outcome);
    }
    if dir.exists() {
        // A replay keeps the logs of the run it replays, one generation back.
        let prev = dir.with_extension("prev");
        if prev.exists() {
            std::fs::remove_dir_all(&prev)
                .with_context(|| format!("clearing {}", prev.display()))?;
        }
        std::fs::rename(&dir, &prev).with_context(|| format!("keeping {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let disk = scenario.needs_tmpfs().then_some(scenario.file.disk_mib);
    let faketime = scenario.needs_faketime();
    let cluster = Cluster::new(
        &opts.bin,
        &dir,
        scenario.file.nodes,
        opts.netns,
        disk,
        faketime,
    )?;
    let mut cluster = cluster;
    if scenario.needs_stall() {
        cluster.stall_lib = Some(cluster::build_stall_shim(&dir)?);
    }
    if let Some(secs) = scenario.file.replace_replicas_after {
        cluster
            .serve_env
            .push(("WARREN_REPLACE_REPLICAS_AFTER".into(), secs.to_string()));
    }
    let mut run = Run {
        scenario,
        cluster,
        rng: StdRng::seed_from_u64(seed),
        last: Vec::new(),
        filled: Vec::new(),
        stalled: Vec::new(),
        faults: Vec::new(),
        fault_times: Vec::new(),
    };
    let result = match tokio::time::timeout(RUN_TIMEOUT, run.go(&mut outcome)).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the run did not finish within {RUN_TIMEOUT:?}"
        )),
    };
    run.cluster.teardown();
    if let Err(e) = result {
        outcome
            .verdicts
            .push(Verdict::fail("the run completed", format!("{e:#}")));
    }
    outcome.faults = run.faults;
    outcome.elapsed = began.elapsed();
    if outcome.passed() && !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(outcome)
}

impl Run<'_> {
    async fn go(&mut self, outcome: &mut Outcome) -> anyhow::Result<()> {
        let file = &self.scenario.file;
        self.cluster.start_all(START_TIMEOUT).await?;
        let addrs = self.cluster.amqp_addrs();
        workload::declare_queues(&addrs, file.queues).await?;
        self.wait_led(Duration::from_secs(60))
            .await
            .context("queues without a leader after the start")?;
        let mut load = Workload::start(addrs, file.queues, self.scenario.publishers(), file.rate);
        let steps = self.scenario.steps.clone();
        for step in &steps {
            self.step(step)
                .await
                .with_context(|| format!("step {step:?}"))?;
        }

        // Undo every fault, then the cluster must recover on its own.
        self.restore().await?;
        let restored = Instant::now();
        outcome.verdicts.push(self.recovered(&load, restored).await);
        load.stop_publishing().await;
        load.drain(DRAIN_QUIET).await;
        outcome.verdicts.push(self.replicas_agree().await);

        let history = workload::lock(&load.history);
        let (counts, verdicts) = check::history(&history);
        outcome.counts = counts;
        outcome.verdicts.extend(verdicts);
        outcome.recover = self
            .fault_times
            .iter()
            .map(|&t| check::recovery_after(&history, t))
            .try_fold(Duration::ZERO, |worst, r| r.map(|r| worst.max(r)));
        outcome.errors = history.errors.iter().cloned().collect();
        drop(history);
        self.cluster.reap();
        outcome.verdicts.push(self.no_crash());
        outcome.verdicts.push(self.memory_bounded());
        Ok(())
    }

    /// Sleeps, sampling the nodes (exits, memory) as it goes.
    async fn watch(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.cluster.reap();
            for &id in &self.filled {
                let _ = self.cluster.fill_disk(id);
            }
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
    }

    async fn step(&mut self, step: &Step) -> anyhow::Result<()> {
        match step {
            Step::Wait { min, max } => {
                let secs = if max > min {
                    self.rng.random_range(*min..=*max)
                } else {
                    *min
                };
                self.watch(Duration::from_secs_f64(secs)).await;
            }
            Step::Kill(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.kill(id).await?;
                    self.mark(format!("kill -9 n{id}"));
                }
            }
            Step::Restart(t) => {
                for id in self.resolve(t, &[]).await? {
                    if self.cluster.node(id)?.state != NodeState::Killed {
                        self.cluster.kill(id).await?;
                    }
                    self.cluster.spawn(id)?;
                    self.mark(format!("restart n{id}"));
                }
            }
            Step::Stop(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.signal(id, true)?;
                    self.mark(format!("SIGSTOP n{id}"));
                }
            }
            Step::Cont(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.signal(id, false)?;
                }
            }
            Step::Wipe(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.wipe(id)?;
                    self.mark(format!("wipe n{id}"));
                }
            }
            Step::Partition(a, b) => {
                let a = self.resolve(a, &[]).await?;
                let b = self.resolve(b, &a).await?;
                self.cluster.partition(&a, &b)?;
                self.mark(format!("partition {} from {}", ids(&a), ids(&b)));
                self.last = a;
            }
            Step::Heal => self.cluster.heal()?,
            Step::Slow(t, ms) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.slow(id, *ms)?;
                    self.mark(format!("slow n{id} {ms}ms"));
                }
            }
            Step::Lossy(t, pct, kbit) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.lossy(id, *pct, *kbit)?;
                    self.mark(format!("lossy n{id} {pct}% {kbit}kbit"));
                }
            }
            Step::FillDisk(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.fill_disk(id)?;
                    self.filled.push(id);
                    self.mark(format!("fill disk n{id}"));
                }
            }
            Step::Clock(t, secs) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.jump_clock(id, *secs)?;
                    self.mark(format!("clock n{id} {secs:+}s"));
                }
            }
            Step::StallDisk(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.stall_disk(id, true)?;
                    self.stalled.push(id);
                    self.mark(format!("stall disk n{id}"));
                }
            }
            Step::UnstallDisk(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.stall_disk(id, false)?;
                    self.stalled.retain(|&s| s != id);
                }
            }
            Step::FreeDisk(t) => {
                for id in self.resolve(t, &[]).await? {
                    self.cluster.free_disk(id)?;
                    self.filled.retain(|&f| f != id);
                }
            }
        }
        Ok(())
    }

    /// Records a fault just done, and when (recovery is timed from here).
    fn mark(&mut self, what: String) {
        self.faults.push(what);
        self.fault_times.push(Instant::now());
    }

    /// The node ids `targets` name now; `other` is the opposite side of a
    /// partition (what `rest` excludes).
    async fn resolve(&mut self, targets: &[Target], other: &[u64]) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for t in targets {
            let found = match t {
                Target::Node(n) => {
                    self.cluster.node(*n)?;
                    vec![*n]
                }
                Target::Random => {
                    let live = self.cluster.running();
                    anyhow::ensure!(!live.is_empty(), "no live node to pick");
                    vec![live[self.rng.random_range(0..live.len())]]
                }
                Target::MetaLeader => vec![self.leader_of(None).await?],
                Target::Leader(q) => vec![self.leader_of(Some(*q)).await?],
                Target::Follower(q) => {
                    let leader = self.leader_of(Some(*q)).await?;
                    let followers: Vec<u64> = self
                        .replicas_of(*q)
                        .await?
                        .into_iter()
                        .filter(|&n| n != leader)
                        .collect();
                    anyhow::ensure!(!followers.is_empty(), "queue {q} has no follower");
                    vec![followers[self.rng.random_range(0..followers.len())]]
                }
                Target::It => self.last.clone(),
                Target::Down => self.cluster.ids_in(NodeState::Killed),
                Target::Stopped => self.cluster.ids_in(NodeState::Stopped),
                Target::Rest => self
                    .cluster
                    .nodes
                    .iter()
                    .map(|n| n.id)
                    .filter(|id| !other.contains(id))
                    .collect(),
                Target::All => self.cluster.nodes.iter().map(|n| n.id).collect(),
            };
            for id in found {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        self.last = out.clone();
        Ok(out)
    }

    /// The leader of the metadata group (`None`) or of workload queue `q`,
    /// as the first running node that knows one reports it.
    async fn leader_of(&mut self, q: Option<usize>) -> anyhow::Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for id in self.cluster.running() {
                let Ok(status) = self.cluster.status(id).await else {
                    continue;
                };
                let leader = match q {
                    None => status["metadata"]["leader"].as_u64(),
                    Some(q) => queue_entry(&status, q).and_then(|e| e["leader"].as_u64()),
                };
                if let Some(l) = leader {
                    return Ok(l);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no node knows the leader of {q:?}"
            );
            self.watch(Duration::from_millis(500)).await;
        }
    }

    async fn replicas_of(&self, q: usize) -> anyhow::Result<Vec<u64>> {
        for id in self.cluster.running() {
            let Ok(status) = self.cluster.status(id).await else {
                continue;
            };
            if let Some(e) = queue_entry(&status, q) {
                return Ok(json_ids(&e["replicas"]));
            }
        }
        anyhow::bail!("no node reports queue {q}")
    }

    /// Waits until every running node reports a metadata leader and a
    /// leader for every workload queue it holds.
    async fn wait_led(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        loop {
            let mut missing = Vec::new();
            // With more nodes than replicas, a node holds a queue only if
            // it is one of its replicas (or reads it for a client there).
            let mut replicas = Vec::new();
            for q in 0..self.scenario.file.queues {
                match self.replicas_of(q).await {
                    Ok(r) => replicas.push(r),
                    Err(e) => {
                        missing.push(format!("q{q}: {e:#}"));
                        replicas.push(Vec::new());
                    }
                }
            }
            for id in self.cluster.running() {
                match self.cluster.status(id).await {
                    Ok(status) => {
                        if status["metadata"]["leader"].as_u64().is_none() {
                            missing.push(format!("n{id}: no metadata leader"));
                        }
                        for (q, holders) in replicas.iter().enumerate() {
                            match queue_entry(&status, q) {
                                Some(e) if e["leader"].as_u64().is_some() => {}
                                Some(_) => missing.push(format!("n{id}: q{q} has no leader")),
                                None if holders.contains(&id) => {
                                    missing.push(format!("n{id}: no replica of q{q}"))
                                }
                                None => {}
                            }
                        }
                    }
                    Err(e) => missing.push(format!("n{id}: {e:#}")),
                }
            }
            if missing.is_empty() {
                return Ok(began.elapsed());
            }
            if began.elapsed() > timeout {
                anyhow::bail!("after {timeout:?}: {}", missing.join("; "));
            }
            self.watch(Duration::from_millis(500)).await;
        }
    }

    /// Undoes every fault still in place: heals the network, resumes
    /// stopped nodes, frees filled disks, restarts killed nodes.
    async fn restore(&mut self) -> anyhow::Result<()> {
        self.cluster.heal()?;
        for id in self.cluster.ids_in(NodeState::Stopped) {
            self.cluster.signal(id, false)?;
        }
        for id in std::mem::take(&mut self.filled) {
            self.cluster.free_disk(id)?;
        }
        for id in std::mem::take(&mut self.stalled) {
            self.cluster.stall_disk(id, false)?;
        }
        for id in self.cluster.ids_in(NodeState::Killed) {
            self.cluster.spawn(id)?;
        }
        Ok(())
    }

    /// After the restore: every node listens, every queue has a leader on
    /// every node, and every publisher has been confirmed since.
    async fn recovered(&mut self, load: &Workload, restored: Instant) -> Verdict {
        const NAME: &str = "recovered after the faults were undone";
        let limit = Duration::from_secs(self.scenario.file.recover_secs);
        for id in self.cluster.nodes.iter().map(|n| n.id).collect::<Vec<_>>() {
            let left = limit.saturating_sub(restored.elapsed());
            if let Err(e) = self
                .cluster
                .wait_listening(id, left.max(Duration::from_secs(1)))
                .await
            {
                return Verdict::fail(NAME, format!("{e:#}"));
            }
        }
        let left = limit.saturating_sub(restored.elapsed());
        if let Err(e) = self.wait_led(left.max(Duration::from_secs(1))).await {
            return Verdict::fail(NAME, format!("{e:#}"));
        }
        loop {
            let progress = check::recovery_after(&workload::lock(&load.history), restored);
            if let Some(t) = progress {
                return Verdict::pass(NAME, format!("every publisher confirmed within {t:.1?}"));
            }
            if restored.elapsed() > limit {
                return Verdict::fail(
                    NAME,
                    format!("a publisher had no confirm {limit:?} after the restore"),
                );
            }
            self.watch(Duration::from_millis(250)).await;
        }
    }

    /// Every replica of every workload queue reports the same applied
    /// index and the same messages.
    async fn replicas_agree(&mut self) -> Verdict {
        const NAME: &str = "replicas agree";
        let began = Instant::now();
        let mut last = String::new();
        while began.elapsed() < AGREE_TIMEOUT {
            match self.disagreement().await {
                Ok(None) => return Verdict::pass(NAME, format!("after {:.1?}", began.elapsed())),
                Ok(Some(why)) => last = why,
                Err(e) => last = format!("{e:#}"),
            }
            self.watch(Duration::from_millis(500)).await;
        }
        Verdict::fail(NAME, format!("after {AGREE_TIMEOUT:?}: {last}"))
    }

    async fn disagreement(&self) -> anyhow::Result<Option<String>> {
        let mut seen: Vec<Vec<(u64, serde_json::Value)>> =
            vec![Vec::new(); self.scenario.file.queues];
        let mut members: Vec<Vec<u64>> = vec![Vec::new(); self.scenario.file.queues];
        for id in self.cluster.running() {
            let status = self.cluster.status(id).await?;
            for (q, seen) in seen.iter_mut().enumerate() {
                if let Some(e) = queue_entry(&status, q) {
                    // Voters, and the learners and readers that apply
                    // the log too.
                    let mut m = json_ids(&e["replicas"]);
                    m.extend(json_ids(&e["learners"]));
                    m.extend(json_ids(&e["readers"]));
                    m.sort_unstable();
                    m.dedup();
                    members[q] = m;
                    let state =
                        serde_json::json!([e["applied_index"], e["messages"], e["unacked"]]);
                    seen.push((id, state));
                }
            }
        }
        for (q, states) in seen.iter().enumerate() {
            let reporting: Vec<u64> = states.iter().map(|(id, _)| *id).collect();
            let mut want = members[q].clone();
            want.sort_unstable();
            let mut have = reporting.clone();
            have.sort_unstable();
            if want.is_empty() || want != have {
                return Ok(Some(format!("q{q}: replicas {want:?}, reporting {have:?}")));
            }
            if states.windows(2).any(|w| w[0].1 != w[1].1) {
                return Ok(Some(format!(
                    "q{q}: [applied, messages, unacked] per node {states:?}"
                )));
            }
        }
        Ok(None)
    }

    fn no_crash(&self) -> Verdict {
        let mut bad = self.cluster.panics();
        let mut allowed = Vec::new();
        let ok_code =
            |c: &Option<i32>| c.is_some_and(|c| self.scenario.file.exits_allowed.contains(&c));
        for n in &self.cluster.nodes {
            if n.exit_codes.iter().all(ok_code) {
                if !n.exit_codes.is_empty() {
                    allowed.push(format!("n{} exited {:?} (allowed)", n.id, n.exit_codes));
                }
            } else if let Some(why) = &n.unexpected_exit {
                bad.push(format!(
                    "node {} exited on its own ({why}; codes {:?})",
                    n.id, n.exit_codes
                ));
            }
        }
        if bad.is_empty() {
            Verdict::pass("no node panicked or died on its own", allowed.join("; "))
        } else {
            Verdict::fail("no node panicked or died on its own", bad.join("; "))
        }
    }

    fn memory_bounded(&self) -> Verdict {
        let limit = self.scenario.file.max_rss_mib * 1024;
        let rss: Vec<String> = self
            .cluster
            .nodes
            .iter()
            .map(|n| format!("n{} {} MiB", n.id, n.max_rss_kib / 1024))
            .collect();
        let detail = format!("max RSS {}", rss.join(", "));
        if self.cluster.nodes.iter().all(|n| n.max_rss_kib <= limit) {
            Verdict::pass("memory stayed bounded", detail)
        } else {
            Verdict::fail(
                "memory stayed bounded",
                format!("{detail} (limit {} MiB)", limit / 1024),
            )
        }
    }
}

fn queue_entry(status: &serde_json::Value, q: usize) -> Option<&serde_json::Value> {
    let name = workload::queue_name(q);
    status["queues"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name.as_str() && e["vhost"] == "/")
}

fn json_ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}

fn ids(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}
