//! Storage benchmark: how many fsyncs/s this disk does, and how many 1 KiB
//! appends/s `RocksStore` turns them into with 1, 16 and 256 concurrent
//! appenders (each appender its own group, one entry per append, waiting for
//! durability before the next, like a Raft log per queue).
//!
//! cargo run -p warren-storage --example bench -- [DIR] [SECONDS_PER_RUN]
//!
//! DIR defaults to a fresh temp dir under /var/tmp (the disk under test).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use warren_storage::{Entry, LogStore, RocksOptions, RocksStore};

fn raw_fsyncs_per_sec(dir: &Path, secs: f64) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let block = vec![0u8; 1024];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

async fn appenders(dir: &Path, n: u64, secs: f64) -> anyhow::Result<()> {
    let run_dir = dir.join(format!("appenders-{n}"));
    let s = RocksStore::open(&run_dir, RocksOptions::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let body = Bytes::from(vec![0xabu8; 1024]);
    let mut tasks = Vec::new();
    for g in 0..n {
        let (s, stop, body) = (s.clone(), stop.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                s.append(g, vec![Entry::new(i, body.clone())]).await?;
                hist.record(t.elapsed().as_micros() as u64)?;
                i += 1;
            }
            anyhow::Ok(hist)
        }));
    }
    let before = s.stats();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await??)?;
    }
    let el = start.elapsed().as_secs_f64();
    let st = s.stats();
    let (appends, fsyncs) = (st.requests - before.requests, st.fsyncs - before.fsyncs);
    println!(
        "| {n:>3} | {:>9.0} | {:>8.0} | {:>7.1} | {:>6} | {:>8.2} | {:>8.2} |",
        appends as f64 / el,
        fsyncs as f64 / el,
        appends as f64 / fsyncs.max(1) as f64,
        st.max_batch_requests,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    drop(s);
    std::fs::remove_dir_all(&run_dir)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tmp;
    let dir: PathBuf = match args.next() {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir_in("/var/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5.0);
    std::fs::create_dir_all(&dir)?;
    println!("dir {}, {secs} s per run", dir.display());
    println!(
        "raw write(1 KiB)+fdatasync: {:.0} fsyncs/s",
        raw_fsyncs_per_sec(&dir, secs)?
    );
    println!("| appenders | appends/s | fsyncs/s | appends/fsync | max batch | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for n in [1, 16, 256] {
        appenders(&dir, n, secs).await?;
    }
    Ok(())
}
