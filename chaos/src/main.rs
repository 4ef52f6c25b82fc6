//! `chaos`: runs fault scenarios (`chaos/scenarios/*.toml`) against a real
//! cluster of `warren serve` processes while a workload of confirmed
//! publishers and acking consumers runs, then checks one invariant per
//! checker and prints a result table. `chaos/run` builds and calls it;
//! `chaos/README.md` is the manual.
//!
//! A run is reproducible by its seed: every random choice (which node,
//! how long to wait) comes from it, in step order.

mod check;
mod cluster;
mod runner;
mod scenario;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use crate::runner::{Options, Outcome};
use crate::scenario::Scenario;

#[derive(Parser, Debug)]
#[command(about = "Fault scenarios against a warren cluster, with loss checkers")]
struct Args {
    /// Only the scenarios marked `ci = true` (the short CI selection).
    #[arg(long)]
    ci: bool,
    /// Run every scenario again and again, seed after seed, for this many
    /// minutes.
    #[arg(long, value_name = "MINUTES")]
    long: Option<u64>,
    /// The seed of the first run (default: 1 with --ci, else from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Run only these scenarios (file stems), e.g. `--scenario kill-queue-leader`.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Runs per scenario (each with the next seed).
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// The warren binary (default: `warren` beside this one).
    #[arg(long, env = "WARREN_BIN")]
    bin: Option<PathBuf>,
    /// Where the nodes' data and logs go (a run's folder is kept when it fails).
    #[arg(long, default_value = "/tmp/warren-chaos")]
    work: PathBuf,
    /// The scenario folder.
    #[arg(long, default_value_os_t = default_scenarios())]
    scenarios_dir: PathBuf,
    /// Also write the result table (markdown) here.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Keep every run's folder, passed or not.
    #[arg(long)]
    keep: bool,
    /// Run on 127.0.0.1 even as root (partition steps are then skipped).
    #[arg(long)]
    loopback: bool,
}

fn default_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn default_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("warren");
    anyhow::ensure!(
        bin.exists(),
        "no warren binary at {} (build it, or pass --bin)",
        bin.display()
    );
    Ok(bin)
}

fn load_all(dir: &Path, only: &[String], ci: bool) -> anyhow::Result<Vec<Scenario>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let s = Scenario::load(&p)?;
        if (only.is_empty() || only.contains(&s.name)) && (!ci || s.file.ci) {
            out.push(s);
        }
    }
    for name in only {
        anyhow::ensure!(
            out.iter().any(|s| &s.name == name),
            "no scenario named {name}"
        );
    }
    Ok(out)
}

fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::from(
        "| scenario | seed | faults | published | confirmed | delivered | lost | duplicated | out of order | recovery | took | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let result = match (&o.skipped, o.passed()) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, true) => "pass".into(),
            (None, false) => {
                let failed: Vec<&str> = o
                    .verdicts
                    .iter()
                    .filter(|v| !v.ok)
                    .map(|v| v.name)
                    .collect();
                format!("FAIL: {}", failed.join("; "))
            }
        };
        let c = &o.counts;
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0?} | {} |\n",
            o.scenario,
            o.seed,
            o.faults.join(", "),
            c.attempts,
            c.confirmed,
            c.delivered,
            c.lost,
            c.duplicated,
            c.out_of_order,
            o.recover.map_or_else(|| "-".into(), |r| format!("{r:.1?}")),
            o.elapsed,
            result
        ));
    }
    t
}

fn print_details(o: &Outcome) {
    println!("--- {} seed {} ({:.0?})", o.scenario, o.seed, o.elapsed);
    if let Some(why) = &o.skipped {
        println!("    skipped: {why}");
        return;
    }
    println!("    faults: {}", o.faults.join(", "));
    for v in &o.verdicts {
        println!(
            "    [{}] {}{}",
            if v.ok { "ok" } else { "FAIL" },
            v.name,
            if v.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", v.detail)
            }
        );
    }
    let c = &o.counts;
    println!(
        "    attempts {} confirmed {} nacked {} delivered {} duplicated {} reconnects {}",
        c.attempts, c.confirmed, c.nacked, c.delivered, c.duplicated, c.reconnects
    );
    if !o.passed() {
        for e in &o.errors {
            println!("    client error: {e}");
        }
        println!("    logs kept in {}", o.dir.display());
        println!(
            "    replay: chaos/run --scenario {} --seed {}",
            o.scenario, o.seed
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => default_bin()?,
    };
    let scenarios = load_all(&args.scenarios_dir, &args.scenarios, args.ci)?;
    anyhow::ensure!(!scenarios.is_empty(), "no scenario selected");
    let _lock = RunLock::take(&args.work)?;
    let netns = !args.loopback && cluster::netns_available();
    if !netns {
        println!(
            "chaos: no network namespaces (not root, or --loopback): nodes on 127.0.0.1, partition and disk steps skipped"
        );
    }
    let first_seed = args.seed.unwrap_or_else(|| {
        if args.ci {
            1
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        }
    });
    let opts = Options {
        bin,
        work: args.work.clone(),
        netns,
        keep: args.keep,
    };
    let deadline = args
        .long
        .map(|m| Instant::now() + Duration::from_secs(m * 60));
    let mut outcomes = Vec::new();
    let mut seed = first_seed;
    'rounds: loop {
        for s in &scenarios {
            for _ in 0..args.repeat {
                println!("=== {} seed {seed}: {}", s.name, s.file.about);
                let o = runner::run(s, seed, &opts).await?;
                print_details(&o);
                outcomes.push(o);
                seed += 1;
                if deadline.is_some_and(|d| Instant::now() > d) {
                    break 'rounds;
                }
            }
        }
        if deadline.is_none() {
            break;
        }
    }
    let t = table(&outcomes);
    println!("\n{t}");
    if let Some(path) = &args.table {
        std::fs::write(path, &t).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    anyhow::ensure!(failed == 0, "{failed} of {} runs failed", outcomes.len());
    Ok(())
}

/// One chaos run at a time per machine: runs share the namespace names,
/// the bridge and its addresses, and each clears what it finds at start.
struct RunLock(PathBuf);

impl RunLock {
    fn take(work: &Path) -> anyhow::Result<RunLock> {
        std::fs::create_dir_all(work)?;
        let path = work.join("chaos.pid");
        if let Ok(pid) = std::fs::read_to_string(&path)
            && Path::new(&format!("/proc/{}", pid.trim())).exists()
        {
            anyhow::bail!(
                "another chaos run (pid {}) is using the cluster's namespaces; wait for it or stop it",
                pid.trim()
            );
        }
        std::fs::write(&path, std::process::id().to_string())?;
        Ok(RunLock(path))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
