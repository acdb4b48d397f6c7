//! `forensnap-emulator`: the local EBS direct-API and S3 stand-in as a process.
//!
//! * `serve` binds 127.0.0.1, prints one JSON line (endpoints, snapshot ids, buckets) and serves
//!   until SIGTERM, ctrl-c, or its standard input closes (a script keeps a pipe open to it and
//!   closes it to stop it; a standard input of /dev/null is not watched).
//! * `ceiling` measures the emulator's own GetSnapshotBlock ceiling with an in-process client.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use forensnap_emulator::{
    BucketSpec, EbsConfig, Emulator, EmulatorConfig, Latency, Layout, Quota, S3Config, Snapshot,
    Storage, ceiling,
};

/// Local stand-in for AWS's EBS direct APIs (and S3's multipart uploads).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve snapshots (and an S3 bucket) on 127.0.0.1 until stopped.
    Serve(Serve),
    /// Measure the emulator's own GetSnapshotBlock ceiling (no latency, no quota).
    Ceiling {
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Keep-alive connections, one request in flight on each.
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
}

/// `serve` options.
#[derive(Debug, clap::Args)]
struct Serve {
    /// EBS port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Fixed latency of every EBS answer, ms.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Up to this much more latency, uniformly at random, ms.
    #[arg(long, default_value_t = 10)]
    jitter_ms: u64,
    /// GetSnapshotBlock quota per snapshot, requests/s (0: none).
    #[arg(long, default_value_t = 1000.0)]
    snapshot_rps: f64,
    /// GetSnapshotBlock quota of the account, requests/s (0: none).
    #[arg(long, default_value_t = 1000.0)]
    account_rps: f64,
    /// ListSnapshotBlocks quota of the account, requests/s (0: none).
    #[arg(long, default_value_t = 50.0)]
    list_rps: f64,
    /// Burst each quota allows, as this many ms of its rate (at least one request).
    #[arg(long, default_value_t = 100)]
    burst_ms: u64,
    /// Probability that a GetSnapshotBlock is throttled anyway (fault injection).
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// A snapshot: ID:GIB:PERCENT[:RUN] (PERCENT of the volume allocated, in runs of RUN blocks,
    /// evenly spread single blocks without RUN). Repeatable.
    #[arg(long = "snapshot", value_name = "ID:GIB:PERCENT[:RUN]")]
    snapshots: Vec<String>,
    /// Also serve S3 (path-style) on a second port.
    #[arg(long)]
    s3: bool,
    /// S3 port (0: any free port).
    #[arg(long, default_value_t = 0)]
    s3_port: u16,
    /// S3 latency, ms (default: --latency-ms); jitter is --jitter-ms.
    #[arg(long)]
    s3_latency_ms: Option<u64>,
    /// An evidence bucket (versioned, Object Lock, COMPLIANCE retention). Repeatable.
    #[arg(long = "bucket", default_value = "forensnap-evidence")]
    buckets: Vec<String>,
    /// Default retention of the buckets, days.
    #[arg(long, default_value_t = 1)]
    retention_days: u32,
    /// Keep only each part's length and checksums, not its bytes.
    #[arg(long)]
    s3_count: bool,
    /// Cut an S3 request body idle for this many seconds (RequestTimeout).
    #[arg(long)]
    idle_timeout_secs: Option<f64>,
    /// Smallest S3 part but the last, bytes.
    #[arg(long, default_value_t = forensnap_emulator::s3::MIN_PART_SIZE)]
    min_part_size: u64,
    /// Do not stop when standard input closes.
    #[arg(long)]
    ignore_stdin: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(serve) => run(serve).await,
        Command::Ceiling {
            seconds,
            connections,
        } => {
            if !(seconds > 0.0 && seconds <= 3600.0) {
                bail!("--seconds must be in (0, 3600]");
            }
            let report = ceiling::ceiling(Duration::from_secs_f64(seconds), connections).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

/// `serve`.
async fn run(args: Serve) -> anyhow::Result<()> {
    let specs = if args.snapshots.is_empty() {
        vec!["snap-00000000000000001:4:60".to_string()]
    } else {
        args.snapshots.clone()
    };
    let snapshots = specs
        .iter()
        .map(|s| parse_snapshot(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let window = Duration::from_millis(args.burst_ms);
    let quota = |rps: f64| (rps > 0.0).then(|| Quota::per_second(rps, window));
    let latency = Latency::millis(args.latency_ms, args.jitter_ms);
    let config = EmulatorConfig {
        ebs: EbsConfig {
            snapshots: snapshots.clone(),
            latency,
            snapshot_quota: quota(args.snapshot_rps),
            account_quota: quota(args.account_rps),
            list_quota: quota(args.list_rps),
            throttle: args.throttle,
        },
        s3: args.s3.then(|| S3Config {
            buckets: args
                .buckets
                .iter()
                .map(|b| BucketSpec::evidence(b, args.retention_days))
                .collect(),
            latency: Latency::millis(
                args.s3_latency_ms.unwrap_or(args.latency_ms),
                args.jitter_ms,
            ),
            storage: if args.s3_count {
                Storage::Count
            } else {
                Storage::Keep
            },
            idle_timeout: args.idle_timeout_secs.map(Duration::from_secs_f64),
            min_part_size: args.min_part_size,
        }),
        ebs_port: args.port,
        s3_port: args.s3_port,
    };
    let emulator = Emulator::launch(config).await?;
    println!(
        "{}",
        serde_json::json!({
            "ebs_endpoint": emulator.url(),
            "s3_endpoint": emulator.s3_url(),
            "snapshots": snapshots.iter().map(|s| &s.id).collect::<Vec<_>>(),
            "buckets": if args.s3 { args.buckets.clone() } else { Vec::new() },
            "stats_url": emulator.stats_url(),
        })
    );
    let why = stopped(!args.ignore_stdin).await?;
    eprintln!("forensnap-emulator: stopping ({why})");
    drop(emulator);
    Ok(())
}

/// Wait for SIGTERM, ctrl-c or (when `watch_stdin`) the end of standard input; say which.
async fn stopped(watch_stdin: bool) -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let (tx, mut stdin_closed) = tokio::sync::oneshot::channel::<()>();
    if watch_stdin && !stdin_is_dev_null() {
        // A plain thread, not tokio's stdin: a blocking read would hold up runtime shutdown.
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    } else {
        // Keep the sender so the receiver never completes.
        std::mem::forget(tx);
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok("ctrl-c"),
        _ = term.recv() => Ok("SIGTERM"),
        _ = &mut stdin_closed => Ok("standard input closed"),
    }
}

/// Whether standard input is /dev/null (a background job of a script gets it, and would stop
/// the emulator at once if watched).
fn stdin_is_dev_null() -> bool {
    match (
        std::fs::metadata("/proc/self/fd/0"),
        std::fs::metadata("/dev/null"),
    ) {
        (Ok(stdin), Ok(null)) => stdin.rdev() == null.rdev() && stdin.dev() == null.dev(),
        _ => false,
    }
}

/// `ID:GIB:PERCENT[:RUN]`.
fn parse_snapshot(spec: &str) -> anyhow::Result<Snapshot> {
    let fields: Vec<&str> = spec.split(':').collect();
    let (id, gib, percent, run) = match fields.as_slice() {
        [id, gib, percent] => (*id, *gib, *percent, None),
        [id, gib, percent, run] => (*id, *gib, *percent, Some(*run)),
        _ => bail!("snapshot {spec:?}: expected ID:GIB:PERCENT[:RUN], e.g. snap-1:4:60"),
    };
    let gib: u64 = gib
        .parse()
        .with_context(|| format!("snapshot {spec:?}: GIB {gib:?} is not a whole number"))?;
    let percent: f64 = percent
        .parse()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .with_context(|| format!("snapshot {spec:?}: PERCENT must be 0..=100"))?;
    let layout =
        match run {
            None => Layout::Even,
            Some(r) => Layout::Runs(r.parse().ok().filter(|r| *r > 0).with_context(|| {
                format!("snapshot {spec:?}: RUN must be a positive block count")
            })?),
        };
    if id.is_empty() || gib == 0 {
        bail!("snapshot {spec:?}: needs an id and at least 1 GiB");
    }
    Ok(Snapshot::allocated(id, gib, percent, layout))
}
