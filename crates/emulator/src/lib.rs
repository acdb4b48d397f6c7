//! forensnap's fast local stand-in for AWS: the EBS direct-API data plane (ListSnapshotBlocks,
//! GetSnapshotBlock) and S3's multipart upload path, on loopback, for throughput benchmarks and
//! fault injection. The Python/moto world stays the reference for correctness (moto serves
//! ~300 blocks/s and ~60-100 MiB/s of multipart upload); this serves at loopback speed and behaves
//! like AWS's quotas when asked to.
//!
//! * [`snapshot`] -- synthetic snapshots (blocks spread, or a percentage allocated, evenly or in
//!   runs), served from a pool of 64 precomputed blocks;
//! * [`ebs`] -- the EBS stand-in: AWS's checksum headers, index paging, restJson1 errors;
//! * [`quota`] -- token buckets per snapshot and per account (`RequestThrottledException` with
//!   reason `RESOURCE_LEVEL_THROTTLE` or `ACCOUNT_THROTTLED`), plus the listing quota;
//! * [`latency`] -- fixed latency plus jitter on every answer, waited on the timer;
//! * [`s3`] -- the S3 stand-in: multipart uploads with per-part SHA-256 or CRC-64/NVME checks
//!   (header or aws-chunked trailer), the composite SHA-256 or the full-object CRC-64/NVME,
//!   Object Lock, versions, in memory;
//! * [`stats`] -- counters, also at `GET /_emulator/stats` on both listeners;
//! * [`ceiling`] -- an in-process load generator measuring the emulator's own ceiling;
//! * `http` -- listener, response bodies, query decoding.
//!
//! The S3 side is written on hyper rather than on an S3 server crate such as `s3s`: forensnap
//! uses about fifteen calls, and the emulator must control what such a crate hides (latency
//! before the answer, cutting an idle streaming body, "count" mode that checksums parts and drops
//! their bytes, S3's exact error codes), with no second HTTP stack in the tree.
//!
//! ## S3 calls served
//! Those of forensnap's S3 adapter (`forensnap-aws`, `s3/*.rs`): ListMultipartUploads, ListParts,
//! CreateMultipartUpload (`x-amz-checksum-algorithm: SHA256` composite or `CRC64NVME`
//! full-object, Object Lock headers), UploadPart (SHA-256 or CRC-64/NVME from
//! `x-amz-checksum-sha256`/`-crc64nvme` or an aws-chunked trailer, checked: `BadDigest`; a body is
//! hashed only with the algorithms its request announces), CompleteMultipartUpload (ETags and
//! part checksums checked, `InvalidPartOrder`, `EntityTooSmall`, composite `...-N`, or the
//! full-object CRC combined from the parts' and checked against `x-amz-checksum-crc64nvme`),
//! AbortMultipartUpload, PutObject (`If-None-Match: *` ->
//! `PreconditionFailed`), GetObject (whole or `Range`), HeadObject (`x-amz-checksum-mode`, lock
//! state, `versionId`), ListObjectsV2 (and v1, with `delimiter`), ListObjectVersions,
//! GetObjectLockConfiguration, GetBucketVersioning; and CreateBucket, HeadBucket, ListBuckets,
//! GetBucketLocation, PutBucketVersioning, PutObjectLockConfiguration, DeleteObject (delete
//! markers; a retained or held version is refused with `AccessDenied`). Anything else answers
//! `501 NotImplemented` naming the request. Signatures are not checked; only SHA-256 and
//! CRC-64/NVME checksums are (CRC32, CRC32C, SHA-1 and Content-MD5 values are accepted as given);
//! a version id is made per write.
//!
//! ## Ceiling
//! `forensnap-emulator ceiling --seconds 5 --connections 64` on the 2-core machine, release
//! build, no latency, no quota: 5,000-5,300 GetSnapshotBlock/s, 2,500-2,650 MiB/s of 512 KiB
//! blocks over three runs (8 connections: 5,891/s; 256 connections: 4,826/s). The load
//! generator runs in the same process and shares the 2 cores with the server (each side gets
//! about one), so this is a floor of what the server alone can do. AWS's own ceiling is 1,000
//! req/s per snapshot (~500 MiB/s): a benchmark that obeys the quota is never held back by the
//! emulator.
//!
//! ## Pointing other tools at it
//! The EBS endpoint is a plain `http://127.0.0.1:PORT`: the AWS SDKs take it as an endpoint URL
//! (`endpoint_url` in code, or `AWS_ENDPOINT_URL_EBS` / `AWS_ENDPOINT_URL` through aws-config),
//! with any static credentials and a region. coldsnap 0.12.0's `download` calls only
//! ListSnapshotBlocks (`NextToken` paging, `MaxResults` 10,000) and GetSnapshotBlock, and
//! honours its global `--endpoint URL` option or those variables (both checked: it downloaded
//! a 2 GiB 60% snapshot and a 1 GiB snapshot in runs, every block as the emulator serves it):
//!
//! ```text
//! AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 \
//!   coldsnap --endpoint http://127.0.0.1:PORT download SNAPSHOT_ID out.img
//! ```
//!
//! Stricter than the benchmark's first emulator, as AWS is: `MaxResults` must be 100..=10,000
//! (100 when absent), `NextToken` is honoured, and a block is read only with the token its
//! listing gave (an unlisted block is `ValidationException` `INVALID_BLOCK_TOKEN`).
//!
//! The S3 endpoint is path-style only (`force_path_style(true)`).

pub mod ceiling;
pub mod ebs;
mod http;
pub mod latency;
pub mod quota;
pub mod s3;
pub mod snapshot;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use ebs::EbsConfig;
pub use http::STATS_PATH;
pub use latency::Latency;
pub use quota::{Quota, Reason};
pub use s3::{BucketSpec, Retention, S3Config, Storage};
pub use snapshot::{BLOCK_SIZE, Layout, Snapshot, block};
pub use stats::{Stats, StatsSnapshot};

/// What to serve.
#[derive(Debug, Clone, Default)]
pub struct EmulatorConfig {
    /// The EBS stand-in.
    pub ebs: EbsConfig,
    /// The S3 stand-in, on a second port, when wanted.
    pub s3: Option<S3Config>,
    /// EBS port on 127.0.0.1 (0: any free port).
    pub ebs_port: u16,
    /// S3 port on 127.0.0.1 (0: any free port).
    pub s3_port: u16,
}

/// A running emulator; it stops (listeners and open connections) when dropped.
pub struct Emulator {
    /// The EBS stand-in's address on loopback.
    pub addr: SocketAddr,
    /// The S3 stand-in's address, when it runs.
    pub s3_addr: Option<SocketAddr>,
    /// Counters of both.
    stats: Arc<Stats>,
    /// Accept loops (each owns its connections).
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Emulator {
    /// Serve `snapshots` at loopback speed, throttling each block read with probability
    /// `throttle` (the benchmark's original emulator).
    pub async fn start(snapshots: Vec<Snapshot>, throttle: f64) -> std::io::Result<Emulator> {
        Emulator::launch(EmulatorConfig {
            ebs: EbsConfig {
                throttle,
                ..EbsConfig::new(snapshots)
            },
            ..EmulatorConfig::default()
        })
        .await
    }

    /// Serve `config` on 127.0.0.1.
    pub async fn launch(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let stats = Arc::new(Stats::default());
        let (listener, addr) = http::bind(config.ebs_port)
            .await
            .map_err(|e| context(e, "EBS", config.ebs_port))?;
        let ebs = Arc::new(ebs::Ebs::new(config.ebs, stats.clone()));
        let mut tasks = vec![http::serve(listener, move |req| ebs.clone().handle(req))];
        let mut s3_addr = None;
        if let Some(s3_config) = config.s3 {
            let (listener, addr) = http::bind(config.s3_port)
                .await
                .map_err(|e| context(e, "S3", config.s3_port))?;
            let s3 = Arc::new(s3::S3::new(s3_config, stats.clone()));
            tasks.push(http::serve(listener, move |req| s3.clone().handle(req)));
            s3_addr = Some(addr);
        }
        Ok(Emulator {
            addr,
            s3_addr,
            stats,
            tasks,
        })
    }

    /// The EBS endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The S3 endpoint URL (path-style), when it runs.
    pub fn s3_url(&self) -> Option<String> {
        self.s3_addr.map(|a| format!("http://{a}"))
    }

    /// The stats document's URL (also served by the S3 listener).
    pub fn stats_url(&self) -> String {
        format!("http://{}{STATS_PATH}", self.addr)
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

/// An I/O error naming the listener it concerns.
fn context(e: std::io::Error, what: &str, port: u16) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("binding the {what} stand-in on 127.0.0.1:{port}: {e}"),
    )
}
