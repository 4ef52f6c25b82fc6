//! The `warren` command.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "warren", version, about = "A clustered AMQP 0-9-1 message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker node.
    Serve(warren::serve::ServeArgs),
    /// Generate load against a broker and report throughput and latency.
    Perf(warren::perf::PerfArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let running = warren::serve::start(args).await?;
            println!("warren listening: amqp={}", running.amqp_addr);
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Command::Perf(args) => warren::perf::run(args).await,
    }
}
