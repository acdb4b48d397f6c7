//! `forensnap-bench`: acquisition throughput and memory, measured. Starts the in-process EBS
//! emulator with synthetic snapshots, reads them with forensnap's real EBS adapter (the AWS SDK
//! over loopback HTTP) and engine (verify, hash, image hash with zero runs, multipart parts), and
//! streams the parts into a sink that checks and drops them, so the figure is forensnap's read
//! path, not a storage server's. Prints one JSON object: wall time, data and volume rates, CPU
//! time and peak RSS.

use std::time::Instant;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use clap::Parser;
use forensnap_acquire::{AcquireOptions, AdaptiveLimit, Limits, acquire};
use forensnap_aws::EbsSource;
use forensnap_bench::{Emulator, Snapshot};
use forensnap_evidence::NoProgress;
use forensnap_store::MemoryStore;

/// Measure acquisition throughput and peak memory against the in-process EBS emulator.
#[derive(Debug, Parser)]
struct Args {
    /// Volumes read at once.
    #[arg(long, default_value_t = 2)]
    volumes: usize,
    /// Size of each volume, GiB.
    #[arg(long, default_value_t = 8)]
    volume_gib: u64,
    /// Data (listed blocks) in each volume, MiB.
    #[arg(long, default_value_t = 2048)]
    data_mib: u64,
    /// Probability that a block read is throttled.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Block reads in flight per volume at most.
    #[arg(long, default_value_t = 64)]
    max_reads: usize,
}

/// (user + system CPU seconds, peak RSS in KiB) of this process, from /proc.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, peak)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_blocks = args.data_mib * 2;
    let snapshots: Vec<Snapshot> = (0..args.volumes)
        .map(|n| Snapshot::spread(&format!("snap-bench{n:04}"), args.volume_gib, data_blocks))
        .collect();
    let emulator = Emulator::start(snapshots.clone(), args.throttle)
        .await
        .context("starting the EBS emulator")?;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIABENCH", "bench", None, None, "bench"))
        .load()
        .await;
    let source = EbsSource::new(&sdk, Some(&emulator.url()));
    let account = AdaptiveLimit::new(
        16,
        args.max_reads * args.volumes,
        1_000.0 * args.volumes as f64,
    );
    let options = AcquireOptions::default();
    let (cpu_before, _) = usage();
    let started = Instant::now();
    let runs = snapshots.iter().map(|s| {
        let (source, account, options) = (&source, &account, &options);
        async move {
            let sink = MemoryStore::discarding();
            let limit = AdaptiveLimit::new(16, args.max_reads, 1_000.0);
            let prefix = format!("bench/{}/", s.id);
            acquire(
                source,
                &sink,
                Limits::shared(&limit, account),
                options,
                &s.id,
                &prefix,
                &NoProgress,
            )
            .await
        }
    });
    let results = futures::future::join_all(runs).await;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, peak_kib) = usage();
    let mut data = 0u64;
    let mut volume = 0u64;
    let mut discarded = 0u64;
    for result in results {
        let got = result.context("acquisition")?;
        data += got.blocks_stored * 524_288;
        volume += got.volume_bytes;
        discarded += got.discarded;
    }
    let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
    println!(
        "{}",
        serde_json::json!({
            "volumes": args.volumes,
            "volume_gib": args.volume_gib,
            "data_mib_per_volume": args.data_mib,
            "throttle_probability": args.throttle,
            "seconds": (seconds * 100.0).round() / 100.0,
            "data_mib_per_second": (mib(data) / seconds).round(),
            "volume_mib_per_second_hashed": (mib(volume) / seconds).round(),
            "block_requests_per_second": ((data / 524_288) as f64 / seconds).round(),
            "cpu_seconds": ((cpu_after - cpu_before) * 100.0).round() / 100.0,
            "peak_rss_mib": (peak_kib as f64 / 1024.0 * 10.0).round() / 10.0,
            "answers_discarded": discarded,
        })
    );
    Ok(())
}
