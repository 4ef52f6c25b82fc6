//! The `warren` command.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "A clustered AMQP 0-9-1 message broker"
)]
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
    /// Administer a running cluster.
    Ctl(warren::ctl::CtlArgs),
}

/// Exit status of a node stopped by a failed store write (EX_IOERR).
const STORAGE_FAILED_EXIT: i32 = 74;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let running = warren::serve::start(args).await?;
            // Tests and scripts read the bound address from this line.
            println!("warren listening: amqp={}", running.amqp_addr);
            tokio::select! {
                signal = wait_for_signal() => signal?,
                () = running.storage_failed() => {
                    tracing::error!(
                        "a write to the data directory failed (logged above): stopping this node \
                         so that none of its replicas goes on without a log it could not write; \
                         restart it once the disk has room and is healthy"
                    );
                    // Not a clean shutdown: nothing more may touch the store.
                    std::process::exit(STORAGE_FAILED_EXIT);
                }
            }
            tracing::info!("shutting down");
            running.shutdown();
            Ok(())
        }
        Command::Perf(args) => warren::perf::run(args).await,
        Command::Ctl(args) => warren::ctl::run(args).await,
    }
}

/// The log filter without `WARREN_LOG` (see [`init_tracing`]).
const DEFAULT_LOG: &str = "info,openraft=warn,openraft::replication=error,\
     openraft::engine::handler::replication_handler=error,openraft::core::heartbeat=error";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        // openraft narrates every election and startup at info: keep its
        // warnings, but not the per-group ones about a peer it cannot reach
        // (replication, heartbeats): while peers start, every group repeats
        // them (measured: ~25 000 lines/s for 40 s, 250 MB, restarting three
        // nodes holding 6 000 queues). The failure detector logs each peer
        // going down and coming back once.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Waits for SIGINT or SIGTERM (how Kubernetes stops a pod).
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
