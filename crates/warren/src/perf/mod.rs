//! `warren perf` (to be written).

/// Options of `warren perf`.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {}

/// Runs the load generator until its duration or message count is reached.
pub async fn run(_args: PerfArgs) -> anyhow::Result<()> {
    anyhow::bail!("warren perf is not written yet")
}
