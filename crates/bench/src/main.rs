//! `forensnap-bench`: acquisition throughput and memory, measured against any EBS endpoint,
//! through forensnap's real SDK adapters and engine (verify every block against AWS's checksum,
//! the image SHA-256 with zero runs, parts assembled and uploaded).
//!
//! * `read`    -- one snapshot read as `collect` reads it, **storing nothing**: the parts are
//!   hashed and dropped in memory. Points at the emulator or at a real snapshot in AWS
//!   (credentials from the default chain) to size a collection before an incident.
//! * `acquire` -- snapshots acquired at once into an S3 endpoint (the emulator's S3 stand-in,
//!   which checks every part's SHA-256), each under its own limiter and all under one account
//!   limiter, as `collect` runs them.
//! * `sha256`  -- the reference for a sparse volume: SHA-256 over N GiB of zeros on one core.
//! * `memory`  -- one memory capture of a large host end to end ([`memory`]): forensnap's peak
//!   memory while the host streams the image through presigned parts and forensnap hashes it.
//!
//! Each prints one JSON object; `scripts/bench` runs the scenarios and prints the medians.

mod memory;

use std::time::Instant;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region};
use clap::{Parser, Subcommand};
use forensnap_acquire::{
    AcquireOptions, AdaptiveLimit, BlockPage, BlockSource, FetchedBlock, Limits, SourceError,
    acquire,
};
use forensnap_aws::{EbsSource, S3Store};
use forensnap_evidence::NoProgress;
use forensnap_store::MemoryStore;
use std::sync::atomic::{AtomicU64, Ordering};

/// Measure forensnap's acquisition against an EBS endpoint.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The limiter settings `collect` takes from `[acquire]`.
#[derive(Debug, clap::Args)]
struct Tuning {
    /// Block reads in flight per volume at most (`max_reads_per_volume`).
    #[arg(long, default_value_t = 128)]
    max_reads: usize,
    /// GetSnapshotBlock requests per second per snapshot (AWS: 1,000).
    #[arg(long, default_value_t = 1_000.0)]
    snapshot_rps: f64,
    /// GetSnapshotBlock requests per second for the account, all volumes together.
    #[arg(long, default_value_t = 1_000.0)]
    account_rps: f64,
    /// Blocks read ahead per volume (`window_blocks`).
    #[arg(long, default_value_t = 160)]
    window: usize,
    /// Parts uploading at once per volume (`uploads_per_volume`).
    #[arg(long, default_value_t = 4)]
    uploads: usize,
    /// Part size, MiB (`part_mib`).
    #[arg(long, default_value_t = 16)]
    part_mib: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read one snapshot as `collect` does, storing nothing (parts hashed and dropped).
    Read {
        /// EBS endpoint URL (omit for AWS's own, from the region).
        #[arg(long)]
        endpoint: Option<String>,
        /// Snapshot id.
        #[arg(long)]
        snapshot: String,
        /// Region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Acquire snapshots at once into an S3 bucket (the emulator's S3 stand-in).
    Acquire {
        /// EBS endpoint URL.
        #[arg(long)]
        endpoint: String,
        /// S3 endpoint URL (path-style).
        #[arg(long)]
        s3_endpoint: String,
        /// Evidence bucket (Object Lock on).
        #[arg(long)]
        bucket: String,
        /// Snapshot ids, read at once.
        #[arg(long = "snapshot", required = true)]
        snapshots: Vec<String>,
        /// Region.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Key prefix of this run (each snapshot goes under PREFIX/ID/).
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// One memory capture through presigned parts into the emulator's S3 (see `memory`).
    Memory {
        /// S3 endpoint URL (path-style): `forensnap-emulator serve --s3`.
        #[arg(long)]
        s3_endpoint: String,
        /// Evidence bucket (Object Lock on).
        #[arg(long)]
        bucket: String,
        /// Bucket for the transfer plan.
        #[arg(long)]
        transfer_bucket: String,
        /// forensnap's document script (member-role.yaml's ForensnapCaptureMemory runCommand).
        #[arg(long)]
        script: std::path::PathBuf,
        /// The AVML build the host runs (localworld/forensnap_world/avml.py stands in).
        #[arg(long)]
        avml: std::path::PathBuf,
        /// The host's RAM, GiB.
        #[arg(long, default_value_t = 16)]
        gib: u64,
        /// Part size, MiB (`[memory] part_mib`).
        #[arg(long, default_value_t = 64)]
        part_mib: u64,
    },
    /// SHA-256 over GiB of zeros on one core (the floor for hashing a sparse volume).
    Sha256 {
        /// GiB of zeros.
        #[arg(long, default_value_t = 1)]
        gib: u64,
    },
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

/// A block source that counts the reads AWS throttled.
struct Counting<S> {
    inner: S,
    throttled: AtomicU64,
}

impl<S: BlockSource> BlockSource for Counting<S> {
    async fn list(
        &self,
        snapshot_id: &str,
        starting_index: u64,
        page_token: Option<&str>,
        max_results: u32,
    ) -> Result<BlockPage, SourceError> {
        self.inner
            .list(snapshot_id, starting_index, page_token, max_results)
            .await
    }

    async fn get(
        &self,
        snapshot_id: &str,
        index: u64,
        token: &str,
    ) -> Result<FetchedBlock, SourceError> {
        let got = self.inner.get(snapshot_id, index, token).await;
        if matches!(got, Err(SourceError::Throttled(..))) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        got
    }
}

/// The SDK config of `region` (credentials from the default chain) and a counting EBS source on
/// `endpoint` (AWS's own when `None`).
async fn counting_source(
    region: String,
    endpoint: Option<&str>,
) -> (aws_config::SdkConfig, Counting<EbsSource>) {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .load()
        .await;
    let source = Counting {
        inner: EbsSource::new(&sdk, endpoint),
        throttled: AtomicU64::new(0),
    };
    (sdk, source)
}

fn options(tuning: &Tuning) -> AcquireOptions {
    AcquireOptions {
        window: tuning.window,
        uploads: tuning.uploads,
        part_bytes: tuning.part_mib << 20,
        ..AcquireOptions::default()
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

const MIB: f64 = 1_048_576.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = Args::parse();
    match args.command {
        Command::Read {
            endpoint,
            snapshot,
            region,
            tuning,
        } => {
            let (_, source) = counting_source(region, endpoint.as_deref()).await;
            let sink = MemoryStore::discarding();
            let limit = AdaptiveLimit::new(16, tuning.max_reads, tuning.snapshot_rps);
            let account = AdaptiveLimit::new(16, tuning.max_reads, tuning.account_rps);
            let (cpu_before, _) = usage();
            let started = Instant::now();
            let got = acquire(
                &source,
                &sink,
                Limits::shared(&limit, &account),
                &options(&tuning),
                &snapshot,
                "bench/",
                &NoProgress,
            )
            .await
            .with_context(|| format!("reading snapshot {snapshot}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let (cpu_after, peak_rss_kib) = usage();
            let data = got.blocks_stored as f64 * 524_288.0;
            let cpu = cpu_after - cpu_before;
            println!(
                "{}",
                serde_json::json!({
                    "mode": "read",
                    "stored": "nothing: parts hashed and dropped in memory",
                    "snapshot": snapshot,
                    "volume_gib": round(got.volume_bytes as f64 / (1u64 << 30) as f64, 2),
                    "data_mib": round(data / MIB, 1),
                    "seconds": round(seconds, 2),
                    "mib_per_second": round(data / MIB / seconds, 1),
                    "cpu_seconds": round(cpu, 2),
                    "cpu_seconds_per_gib": round(cpu / (data / MIB / 1024.0).max(1e-9), 2),
                    "peak_rss_kib": peak_rss_kib,
                    "requests_throttled": source.throttled.load(Ordering::Relaxed),
                    "answers_discarded": got.discarded,
                    "image_sha256": got.image_sha256,
                })
            );
        }
        Command::Acquire {
            endpoint,
            s3_endpoint,
            bucket,
            snapshots,
            region,
            prefix,
            tuning,
        } => {
            let (sdk, source) = counting_source(region, Some(&endpoint)).await;
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .endpoint_url(&s3_endpoint)
                    .force_path_style(true)
                    .build(),
            );
            let sink = S3Store::new(s3, &bucket, false);
            let account =
                AdaptiveLimit::new(16, tuning.max_reads * snapshots.len(), tuning.account_rps);
            let options = options(&tuning);
            let (cpu_before, _) = usage();
            let started = Instant::now();
            let runs = snapshots.iter().map(|id| {
                let (source, sink, account, options, tuning) =
                    (&source, &sink, &account, &options, &tuning);
                let prefix = format!("{prefix}/{id}/");
                async move {
                    let limit = AdaptiveLimit::new(16, tuning.max_reads, tuning.snapshot_rps);
                    let started = Instant::now();
                    let got = acquire(
                        source,
                        sink,
                        Limits::shared(&limit, account),
                        options,
                        id,
                        &prefix,
                        &NoProgress,
                    )
                    .await
                    .with_context(|| format!("acquiring snapshot {id}"))?;
                    anyhow::Ok((got, started.elapsed().as_secs_f64()))
                }
            });
            let results = futures::future::try_join_all(runs).await?;
            let seconds = started.elapsed().as_secs_f64();
            let (cpu_after, peak_rss_kib) = usage();
            let cpu = cpu_after - cpu_before;
            let data: f64 = results
                .iter()
                .map(|(got, _)| got.blocks_stored as f64 * 524_288.0)
                .sum();
            let volumes: Vec<serde_json::Value> = results
                .iter()
                .map(|(got, secs)| {
                    let mib = got.blocks_stored as f64 * 524_288.0 / MIB;
                    serde_json::json!({
                        "snapshot": got.snapshot_id,
                        "data_mib": round(mib, 1),
                        "seconds": round(*secs, 2),
                        "mib_per_second": round(mib / secs, 1),
                        "parts": got.parts,
                        "block_map_bytes": got.block_map_bytes,
                        "image_sha256": got.image_sha256,
                        "composite_sha256": got.composite_sha256,
                        "data_crc64nvme": got.data_crc64nvme,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "mode": "acquire",
                    "stored": "into the S3 endpoint, each part's SHA-256 checked by it",
                    "volumes": volumes,
                    "data_mib": round(data / MIB, 1),
                    "seconds": round(seconds, 2),
                    "mib_per_second": round(data / MIB / seconds, 1),
                    "cpu_seconds": round(cpu, 2),
                    "cpu_seconds_per_gib": round(cpu / (data / MIB / 1024.0).max(1e-9), 2),
                    "peak_rss_kib": peak_rss_kib,
                    "requests_throttled": source.throttled.load(Ordering::Relaxed),
                })
            );
        }
        Command::Memory {
            s3_endpoint,
            bucket,
            transfer_bucket,
            script,
            avml,
            gib,
            part_mib,
        } => {
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .load()
                .await;
            let spec = memory::Spec {
                s3_endpoint,
                bucket,
                transfer_bucket,
                script,
                avml,
                gib,
                part_mib,
            };
            println!("{}", memory::run(spec, &sdk).await?);
        }
        Command::Sha256 { gib } => {
            let started = Instant::now();
            let mut hasher = forensnap_core::hashing::ResumableSha256::new();
            hasher.update_zeros(gib << 30);
            let digest = hasher.finalize_hex();
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "mode": "sha256",
                    "gib": gib,
                    "seconds": round(seconds, 2),
                    "mib_per_second": round((gib << 10) as f64 / seconds, 1),
                    "sha256": digest,
                })
            );
        }
    }
    Ok(())
}
