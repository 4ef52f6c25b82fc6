//! Durability under `kill -9`: a child process appends and prints an `ACK`
//! line only after each append's future resolved (i.e. after the fsync);
//! the parent SIGKILLs it mid-stream, reopens the DB and checks that every
//! acknowledged entry is there, the whole set, with the right payload.
//! Three rounds on the same DB, each child continuing the logs.
//!
//! kill -9 kills the process, not the machine: page-cache data survives it
//! even without fsync, so this proves the acknowledgement path and WAL
//! recovery, not the fsync itself (that is `set_sync(true)` on every batch).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_storage::{Entry, LogStore, MetaKey, RocksOptions, RocksStore};

const CHILD_DIR_ENV: &str = "WARREN_STORAGE_KILL9_DIR";
const GROUPS: u64 = 24;
const ROUNDS: usize = 3;
const ACKS_PER_ROUND: usize = 3000;

fn payload(group: u64, index: u64) -> Bytes {
    let mut v = format!("g{group}i{index}:").into_bytes();
    v.resize(200 + (index % 7) as usize * 50, b'x');
    Bytes::from(v)
}

/// The child: appends forever to GROUPS groups from concurrent tasks, one to
/// three entries per append, and saves the last acknowledged index as meta
/// now and then. Does nothing unless started by the parent.
#[test]
#[ignore = "child process of kill9_keeps_every_acknowledged_entry"]
fn kill9_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let s = RocksStore::open(dir.as_ref(), RocksOptions::default()).expect("open");
        for g in 0..GROUPS {
            let s = s.clone();
            tokio::spawn(async move {
                let mut next = s.log_state(g).expect("state").last_index.unwrap_or(0) + 1;
                loop {
                    let n = 1 + next % 3;
                    let es: Vec<Entry> = (next..next + n)
                        .map(|i| Entry::new(i, payload(g, i)))
                        .collect();
                    if let Err(e) = s.append(g, es).await {
                        eprintln!("child: append failed: {e}");
                        std::process::exit(2);
                    }
                    {
                        let mut out = std::io::stdout().lock();
                        for i in next..next + n {
                            writeln!(out, "ACK {g} {i}").expect("stdout");
                        }
                        out.flush().expect("flush");
                    }
                    let last = next + n - 1;
                    if last % 10 == 0 {
                        let v = Bytes::from(last.to_string());
                        if let Err(e) = s.save_meta(g, MetaKey::Committed, v).await {
                            eprintln!("child: save_meta failed: {e}");
                            std::process::exit(2);
                        }
                        println!("META {g} {last}");
                    }
                    next += n;
                }
            });
        }
        // Runs until the parent kills it; a failing writer exits the process.
        std::future::pending::<()>().await;
    });
}

/// Acknowledged state seen so far: per group, the acked indexes and the
/// highest acked Committed meta.
#[derive(Default)]
struct Acked {
    entries: BTreeMap<u64, Vec<u64>>,
    meta: BTreeMap<u64, u64>,
    count: usize,
}

fn run_child_round(dir: &std::path::Path, acked: &mut Acked) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill9_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let target = acked.count + ACKS_PER_ROUND;
    let record = |line: &str, acked: &mut Acked| {
        let mut f = line.split(' ');
        let (kind, g, i) = (f.next(), f.next(), f.next());
        let (Some(g), Some(i)) = (
            g.and_then(|g| g.parse().ok()),
            i.and_then(|i| i.parse().ok()),
        ) else {
            return;
        };
        match kind {
            Some("ACK") => {
                acked.entries.entry(g).or_default().push(i);
                acked.count += 1;
            }
            Some("META") => {
                let m = acked.meta.entry(g).or_default();
                *m = (*m).max(i);
            }
            _ => {}
        }
    };
    for line in lines.by_ref() {
        record(&line.expect("read child"), acked);
        assert!(
            Instant::now() < deadline,
            "child too slow: {} acks",
            acked.count
        );
        if acked.count >= target {
            break;
        }
    }
    assert!(
        acked.count >= target,
        "child stopped early at {} acks",
        acked.count
    );
    child.kill().expect("SIGKILL child");
    // Lines the child wrote before it died were acknowledged too.
    for line in lines {
        record(&line.expect("read child"), acked);
    }
    let status = child.wait().expect("wait child");
    assert!(
        !status.success(),
        "child must have been killed, not exited: {status:?}"
    );
}

fn check(dir: &std::path::Path, acked: &Acked) {
    let s = RocksStore::open(dir, RocksOptions::default()).expect("reopen after kill");
    for (g, idx) in &acked.entries {
        // Appends of a group are sequential, so every acked index is <= max
        // and the log must hold exactly 1..=max (and maybe unacked more).
        let max = *idx.iter().max().expect("non-empty");
        let stored = s.entries(*g, 1..max + 1).expect("read");
        assert_eq!(
            stored.len() as u64,
            max,
            "group {g}: acked up to {max}, log has {}",
            stored.len()
        );
        for (n, e) in stored.iter().enumerate() {
            assert_eq!(e.index, n as u64 + 1);
            assert_eq!(
                e.payload,
                payload(*g, e.index),
                "group {g} index {}",
                e.index
            );
        }
    }
    for (g, m) in &acked.meta {
        let v = s
            .read_meta(*g, MetaKey::Committed)
            .expect("meta")
            .expect("acked meta present");
        let v: u64 = std::str::from_utf8(&v)
            .expect("utf8")
            .parse()
            .expect("number");
        assert!(v >= *m, "group {g}: meta {v} older than acked {m}");
    }
}

#[test]
fn kill9_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut acked = Acked::default();
    for round in 0..ROUNDS {
        run_child_round(dir.path(), &mut acked);
        check(dir.path(), &acked);
        eprintln!(
            "round {round}: {} acknowledged entries all present",
            acked.count
        );
    }
    assert_eq!(acked.entries.len() as u64, GROUPS);
}
