//! A scenario file: the cluster's shape, the workload's size, and the
//! fault schedule as a list of steps, one short line each.
//!
//! ```toml
//! about = "kill -9 the leader of a busy queue, then restart it"
//! ci = true
//! steps = ["wait 3", "kill leader:q0", "wait 5..8", "restart it", "wait 5"]
//! ```
//!
//! Steps (a target names nodes, see [`Target`]):
//!
//! | step                  | what it does                                           |
//! |-----------------------|--------------------------------------------------------|
//! | `wait S` / `wait A..B`| sleep S seconds, or a seeded random time in [A, B]     |
//! | `kill T`              | SIGKILL (`kill -9`)                                    |
//! | `restart T`           | start again on the same data dir (kills it first)      |
//! | `stop T` / `cont T`   | SIGSTOP / SIGCONT: a node that hangs, then resumes     |
//! | `wipe T`              | empty the data dir of a killed node                    |
//! | `partition A \| B`    | drop every packet between the two sets (netns)         |
//! | `isolate T`           | `partition T \| rest`                                  |
//! | `heal`                | undo every partition and slow link                     |
//! | `slow T MS`           | delay T's packets by MS (tc netem, where the kernel has it) |
//! | `fill-disk T` / `free-disk T` | fill T's data filesystem (a tmpfs) / free it   |
//! | `lossy T PCT KBIT`    | T drops PCT% of the packets it receives, sends at most KBIT kbit/s (iptables statistic, tc tbf) |
//! | `stall-disk T` / `unstall-disk T` | T's fsyncs block until unstalled (a preloaded shim) |
//! | `clock T +S`          | T's clocks (wall and monotonic) jump S seconds (libfaketime) |

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A scenario as its file gives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// One line: what the scenario does and why.
    pub about: String,
    #[serde(default = "defaults::nodes")]
    pub nodes: u64,
    /// Durable quorum queues the workload uses (`chaos-q0`, `chaos-q1`, …).
    #[serde(default = "defaults::queues")]
    pub queues: usize,
    /// Publishers (each feeds queue `p % queues`); default one per queue.
    pub publishers: Option<usize>,
    /// Messages per second per publisher.
    #[serde(default = "defaults::rate")]
    pub rate: u32,
    /// Part of the short selection `chaos/run --ci` runs.
    #[serde(default)]
    pub ci: bool,
    /// Upper bound on any node's resident memory, MiB.
    #[serde(default = "defaults::max_rss_mib")]
    pub max_rss_mib: u64,
    /// How long after the last fault is undone every queue must have a
    /// leader on every node and every publisher must make progress.
    #[serde(default = "defaults::recover_secs")]
    pub recover_secs: u64,
    /// Size of each node's data filesystem when a step fills a disk, MiB.
    #[serde(default = "defaults::disk_mib")]
    pub disk_mib: u64,
    /// Exit codes with which a node may stop on its own in this scenario
    /// (74: a failed store write stops the node by design).
    #[serde(default)]
    pub exits_allowed: Vec<i32>,
    /// `warren serve --replace-replicas-after`: seconds a node may be down
    /// before its queue replicas are replaced (default: the binary's).
    pub replace_replicas_after: Option<u64>,
    pub steps: Vec<String>,
}

mod defaults {
    pub fn nodes() -> u64 {
        3
    }
    pub fn queues() -> usize {
        3
    }
    pub fn rate() -> u32 {
        150
    }
    pub fn max_rss_mib() -> u64 {
        1024
    }
    pub fn recover_secs() -> u64 {
        30
    }
    pub fn disk_mib() -> u64 {
        256
    }
}

/// A parsed scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub file: ScenarioFile,
    pub steps: Vec<Step>,
}

/// Which nodes a step acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(u64),
    /// A live node, chosen by the seed.
    Random,
    /// The metadata group's leader.
    MetaLeader,
    /// The leader of workload queue N.
    Leader(usize),
    /// A follower of workload queue N (seeded choice).
    Follower(usize),
    /// The nodes the previous targeted step acted on.
    It,
    /// Every node killed and not restarted.
    Down,
    /// Every node stopped (SIGSTOP) and not resumed.
    Stopped,
    /// Every node not in the other side of a partition.
    Rest,
    All,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Wait {
        min: f64,
        max: f64,
    },
    Kill(Vec<Target>),
    Restart(Vec<Target>),
    Stop(Vec<Target>),
    Cont(Vec<Target>),
    Wipe(Vec<Target>),
    Partition(Vec<Target>, Vec<Target>),
    Heal,
    Slow(Vec<Target>, u64),
    /// Loss percent, throttle kbit/s.
    Lossy(Vec<Target>, u32, u64),
    FillDisk(Vec<Target>),
    FreeDisk(Vec<Target>),
    StallDisk(Vec<Target>),
    UnstallDisk(Vec<Target>),
    Clock(Vec<Target>, i64),
}

impl Step {
    /// Needs network namespaces (root).
    pub fn needs_netns(&self) -> bool {
        matches!(
            self,
            Step::Partition(..) | Step::Slow(..) | Step::Lossy(..) | Step::Heal
        )
    }

    pub fn needs_tmpfs(&self) -> bool {
        matches!(self, Step::FillDisk(_) | Step::FreeDisk(_))
    }

    pub fn needs_faketime(&self) -> bool {
        matches!(self, Step::Clock(..))
    }

    /// Needs the stall shim preloaded into the nodes (a C compiler).
    pub fn needs_stall(&self) -> bool {
        matches!(self, Step::StallDisk(_) | Step::UnstallDisk(_))
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("scenario file name")?
            .to_owned();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ScenarioFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let steps = file
            .steps
            .iter()
            .map(|s| parse_step(s).with_context(|| format!("{name}: step {s:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            file.nodes >= 1 && file.queues >= 1,
            "{name}: needs nodes and queues"
        );
        Ok(Scenario { name, file, steps })
    }

    pub fn publishers(&self) -> usize {
        self.file.publishers.unwrap_or(self.file.queues)
    }

    pub fn needs_netns(&self) -> bool {
        self.steps.iter().any(Step::needs_netns)
    }

    pub fn needs_tmpfs(&self) -> bool {
        self.steps.iter().any(Step::needs_tmpfs)
    }

    pub fn needs_stall(&self) -> bool {
        self.steps.iter().any(Step::needs_stall)
    }

    pub fn needs_faketime(&self) -> bool {
        self.steps.iter().any(Step::needs_faketime)
    }
}

pub fn parse_step(line: &str) -> anyhow::Result<Step> {
    let line = line.trim();
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    Ok(match verb {
        "wait" => {
            let (min, max) = match rest.split_once("..") {
                Some((a, b)) => (a.trim().parse()?, b.trim().parse()?),
                None => {
                    let s: f64 = rest.parse()?;
                    (s, s)
                }
            };
            anyhow::ensure!(0.0 <= min && min <= max, "bad wait range");
            Step::Wait { min, max }
        }
        "kill" => Step::Kill(targets(rest)?),
        "restart" => Step::Restart(targets(rest)?),
        "stop" => Step::Stop(targets(rest)?),
        "cont" => Step::Cont(targets(rest)?),
        "wipe" => Step::Wipe(targets(rest)?),
        "isolate" => Step::Partition(targets(rest)?, vec![Target::Rest]),
        "partition" => {
            let (a, b) = rest.split_once('|').context("partition A | B")?;
            Step::Partition(targets(a)?, targets(b)?)
        }
        "heal" => {
            anyhow::ensure!(rest.is_empty(), "heal takes no target");
            Step::Heal
        }
        "slow" => {
            let (t, ms) = rest.rsplit_once(' ').context("slow T MS")?;
            Step::Slow(targets(t)?, ms.trim().parse()?)
        }
        "lossy" => {
            let mut words = rest.rsplitn(3, ' ');
            let kbit = words.next().context("lossy T PCT KBIT")?.trim().parse()?;
            let pct = words.next().context("lossy T PCT KBIT")?.trim().parse()?;
            let t = words.next().context("lossy T PCT KBIT")?;
            Step::Lossy(targets(t)?, pct, kbit)
        }
        "clock" => {
            let (t, secs) = rest.rsplit_once(' ').context("clock T +S")?;
            Step::Clock(targets(t)?, secs.trim().trim_start_matches('+').parse()?)
        }
        "fill-disk" => Step::FillDisk(targets(rest)?),
        "free-disk" => Step::FreeDisk(targets(rest)?),
        "stall-disk" => Step::StallDisk(targets(rest)?),
        "unstall-disk" => Step::UnstallDisk(targets(rest)?),
        other => bail!("unknown step {other:?}"),
    })
}

/// `1`, `1,2`, `random`, `meta-leader`, `leader:q0`, `follower:q1`, `it`,
/// `down`, `stopped`, `rest`, `all` (comma-separated).
fn targets(text: &str) -> anyhow::Result<Vec<Target>> {
    let text = text.trim();
    anyhow::ensure!(!text.is_empty(), "missing target");
    text.split(',').map(|t| target(t.trim())).collect()
}

fn target(t: &str) -> anyhow::Result<Target> {
    let queue = |q: &str| -> anyhow::Result<usize> {
        q.strip_prefix('q')
            .context("queue is qN")?
            .parse()
            .context("queue number")
    };
    Ok(match t {
        "random" => Target::Random,
        "meta-leader" => Target::MetaLeader,
        "it" => Target::It,
        "down" => Target::Down,
        "stopped" => Target::Stopped,
        "rest" => Target::Rest,
        "all" => Target::All,
        _ => {
            if let Some(q) = t.strip_prefix("leader:") {
                Target::Leader(queue(q)?)
            } else if let Some(q) = t.strip_prefix("follower:") {
                Target::Follower(queue(q)?)
            } else {
                Target::Node(t.parse().with_context(|| format!("unknown target {t:?}"))?)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() -> anyhow::Result<()> {
        assert_eq!(parse_step("wait 2")?, Step::Wait { min: 2.0, max: 2.0 });
        assert_eq!(
            parse_step("wait 1..3.5")?,
            Step::Wait { min: 1.0, max: 3.5 }
        );
        assert_eq!(
            parse_step("kill leader:q1")?,
            Step::Kill(vec![Target::Leader(1)])
        );
        assert_eq!(
            parse_step("partition 1 | 2,3")?,
            Step::Partition(
                vec![Target::Node(1)],
                vec![Target::Node(2), Target::Node(3)]
            )
        );
        assert_eq!(
            parse_step("isolate meta-leader")?,
            Step::Partition(vec![Target::MetaLeader], vec![Target::Rest])
        );
        assert_eq!(
            parse_step("slow 2 100")?,
            Step::Slow(vec![Target::Node(2)], 100)
        );
        assert_eq!(parse_step("restart it")?, Step::Restart(vec![Target::It]));
        assert_eq!(
            parse_step("clock random +60")?,
            Step::Clock(vec![Target::Random], 60)
        );
        assert!(parse_step("kill").is_err());
        assert!(parse_step("explode 1").is_err());
        assert!(parse_step("wait 3..1").is_err());
        assert!(parse_step("kill leader:x").is_err());
        Ok(())
    }

    #[test]
    fn shipped_scenarios_parse() -> anyhow::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path)?;
                n += 1;
            }
        }
        assert!(n > 0, "no scenarios found");
        Ok(())
    }
}
