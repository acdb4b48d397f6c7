//! The EBS direct-API data plane: ListSnapshotBlocks (index paging, `NextToken`) and
//! GetSnapshotBlock (AWS's checksum headers) over synthetic snapshots, behind the quotas AWS
//! applies ([`crate::quota`]), a per-answer latency ([`crate::latency`]) and an optional random
//! throttle for fault injection. Errors have AWS's restJson1 shape: `x-amzn-ErrorType` names the
//! exception, the JSON body carries `Message` and `Reason`, so the SDK parses e.g.
//! `RequestThrottledException { reason: ACCOUNT_THROTTLED }`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::http::{Body, build, query, stats_answer};
use crate::latency::Latency;
use crate::quota::{Bucket, Quota, Reason, take};
use crate::snapshot::{BLOCK_SIZE, Pool, Snapshot};
use crate::stats::{Stats, add};

/// AWS's bounds on ListSnapshotBlocks `MaxResults`.
const MAX_RESULTS: std::ops::RangeInclusive<u32> = 100..=10_000;
/// `MaxResults` when the caller gives none (coldsnap's comment: "the default of 100").
const DEFAULT_MAX_RESULTS: u32 = 100;
/// How long block tokens are valid (AWS: 7 days); only reported, in `ExpiryTime`.
const TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the EBS stand-in serves and how.
#[derive(Debug, Clone, Default)]
pub struct EbsConfig {
    /// The snapshots it serves.
    pub snapshots: Vec<Snapshot>,
    /// Latency of every answer (data, listing, error, throttle).
    pub latency: Latency,
    /// GetSnapshotBlock quota of each snapshot (AWS: 1,000/s, not adjustable).
    pub snapshot_quota: Option<Quota>,
    /// GetSnapshotBlock quota of the account, all snapshots together (AWS: 1,000/s by default).
    pub account_quota: Option<Quota>,
    /// ListSnapshotBlocks quota of the account (AWS: 50/s).
    pub list_quota: Option<Quota>,
    /// Probability that a GetSnapshotBlock is throttled anyway (fault injection).
    pub throttle: f64,
}

impl EbsConfig {
    /// `snapshots` served at loopback speed: no latency, no quota, no injected throttling.
    pub fn new(snapshots: Vec<Snapshot>) -> EbsConfig {
        EbsConfig {
            snapshots,
            ..EbsConfig::default()
        }
    }

    /// AWS's default quotas (1,000/s per snapshot, 1,000/s per account, 50 listings/s), each
    /// with a burst of `window` worth of its rate.
    pub fn with_aws_quotas(mut self, window: Duration) -> EbsConfig {
        self.snapshot_quota = Some(Quota::per_second(1000.0, window));
        self.account_quota = Some(Quota::per_second(1000.0, window));
        self.list_quota = Some(Quota::per_second(50.0, window));
        self
    }
}

/// The running stand-in's state.
pub(crate) struct Ebs {
    /// Snapshots by id, each with its GetSnapshotBlock bucket.
    snapshots: HashMap<String, (Snapshot, Option<Bucket>)>,
    /// The account's GetSnapshotBlock bucket.
    account: Option<Bucket>,
    /// The account's ListSnapshotBlocks bucket.
    list: Option<Bucket>,
    /// Answer latency.
    latency: Latency,
    /// Injected throttle probability.
    throttle: f64,
    /// Block contents.
    pool: Pool,
    /// Counters.
    stats: Arc<Stats>,
    /// Source of request ids.
    requests: AtomicU64,
}

impl Ebs {
    /// State for `config`, counting into `stats`.
    pub(crate) fn new(config: EbsConfig, stats: Arc<Stats>) -> Ebs {
        Ebs {
            snapshots: config
                .snapshots
                .into_iter()
                .map(|s| {
                    let bucket = config.snapshot_quota.map(Bucket::new);
                    (s.id.clone(), (s, bucket))
                })
                .collect(),
            account: config.account_quota.map(Bucket::new),
            list: config.list_quota.map(Bucket::new),
            latency: config.latency,
            throttle: config.throttle,
            pool: Pool::new(),
            stats,
            requests: AtomicU64::new(0),
        }
    }

    /// Answer one request.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if let Some(answer) = stats_answer(&self.stats, &req) {
            return answer;
        }
        let request_id = format!("ebs-{:016x}", self.requests.fetch_add(1, Ordering::Relaxed));
        let answer = self.answer(&req);
        // Every answer waits, throttles included: a client sees AWS's round trip either way.
        self.latency.wait().await;
        let (builder, body) = answer;
        build(builder.header("x-amzn-RequestId", request_id), body)
    }

    /// The answer (decided at arrival, as the quotas are).
    fn answer(&self, req: &Request<Incoming>) -> (http::response::Builder, Body) {
        let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
        let q = query(req);
        match (req.method().as_str(), path.as_slice()) {
            ("GET", ["snapshots", id, "blocks"]) => self.list_blocks(id, &q),
            ("GET", ["snapshots", id, "blocks", index]) => self.get_block(id, index, &q),
            _ => error(
                404,
                "ValidationException",
                "INVALID_PARAMETER_VALUE",
                &format!(
                    "{} {}: not an EBS direct-API read the emulator serves",
                    req.method(),
                    req.uri().path()
                ),
            ),
        }
    }

    /// ListSnapshotBlocks.
    fn list_blocks(
        &self,
        id: &str,
        q: &HashMap<String, String>,
    ) -> (http::response::Builder, Body) {
        let Some((snapshot, _)) = self.snapshots.get(id) else {
            return not_found(id);
        };
        let max = match q.get("maxResults").map(|v| v.parse::<u32>()) {
            None => DEFAULT_MAX_RESULTS,
            Some(Ok(n)) if MAX_RESULTS.contains(&n) => n,
            Some(_) => {
                return error(
                    400,
                    "ValidationException",
                    "INVALID_PARAMETER_VALUE",
                    "MaxResults must be between 100 and 10000",
                );
            }
        } as usize;
        let start = match (q.get("pageToken"), q.get("startingBlockIndex")) {
            (Some(token), _) => match token.strip_prefix('n').and_then(|n| n.parse::<u64>().ok()) {
                Some(index) => index,
                None => {
                    return error(
                        400,
                        "ValidationException",
                        "INVALID_PAGE_TOKEN",
                        &format!("page token {token:?} was not issued by this emulator"),
                    );
                }
            },
            (None, Some(index)) => match index.parse::<u64>() {
                Ok(index) => index,
                Err(_) => {
                    return error(
                        400,
                        "ValidationException",
                        "INVALID_PARAMETER_VALUE",
                        "StartingBlockIndex must be a non-negative integer",
                    );
                }
            },
            (None, None) => 0,
        };
        if let Err(reason) = take(None, self.list.as_ref()) {
            add(&self.stats.list_throttled, 1);
            return throttled(reason);
        }
        add(&self.stats.list_served, 1);
        let from = snapshot.blocks.partition_point(|&b| b < start);
        let to = (from + max).min(snapshot.blocks.len());
        let expiry = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(TOKEN_LIFETIME)
            .as_secs();
        let mut body = serde_json::json!({
            "Blocks": snapshot.blocks[from..to]
                .iter()
                .map(|i| serde_json::json!({"BlockIndex": i, "BlockToken": token(*i)}))
                .collect::<Vec<_>>(),
            "ExpiryTime": expiry,
            "VolumeSize": snapshot.volume_gib,
            "BlockSize": BLOCK_SIZE,
        });
        if let Some(next) = snapshot.blocks.get(to) {
            body["NextToken"] = serde_json::json!(format!("n{next}"));
        }
        (
            http::Response::builder().header("content-type", "application/json"),
            Body::full(body.to_string()),
        )
    }

    /// GetSnapshotBlock.
    fn get_block(
        &self,
        id: &str,
        index: &str,
        q: &HashMap<String, String>,
    ) -> (http::response::Builder, Body) {
        let failed = |answer| {
            add(&self.stats.get_failed, 1);
            answer
        };
        let Some((snapshot, bucket)) = self.snapshots.get(id) else {
            return failed(not_found(id));
        };
        let Ok(index) = index.parse::<u64>() else {
            return failed(error(
                400,
                "ValidationException",
                "INVALID_BLOCK",
                "BlockIndex must be an integer",
            ));
        };
        if q.get("blockToken") != Some(&token(index)) || !snapshot.holds(index) {
            return failed(error(
                400,
                "ValidationException",
                "INVALID_BLOCK_TOKEN",
                &format!("no valid block token for block {index} of {id}"),
            ));
        }
        if let Err(reason) = take(bucket.as_ref(), self.account.as_ref()) {
            add(
                match reason {
                    Reason::Account => &self.stats.get_throttled_account,
                    Reason::Resource => &self.stats.get_throttled_resource,
                },
                1,
            );
            return throttled(reason);
        }
        if self.throttle > 0.0 && fastrand::f64() < self.throttle {
            add(&self.stats.get_throttled_injected, 1);
            return throttled(Reason::Account);
        }
        add(&self.stats.get_served, 1);
        add(&self.stats.get_bytes, BLOCK_SIZE as u64);
        let (data, checksum) = self.pool.get(index);
        (
            http::Response::builder()
                .header("content-type", "application/octet-stream")
                .header("x-amz-Data-Length", BLOCK_SIZE.to_string())
                .header("x-amz-Checksum", checksum.as_str())
                .header("x-amz-Checksum-Algorithm", "SHA256"),
            Body::Full(Some(data.clone())),
        )
    }
}

/// The block token of block `index` (stable, so a saved listing stays usable).
fn token(index: u64) -> String {
    format!("t{index}")
}

/// An EBS error: HTTP `status`, exception `kind`, `reason` and `message` as AWS sends them.
fn error(status: u16, kind: &str, reason: &str, message: &str) -> (http::response::Builder, Body) {
    (
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-amzn-ErrorType", kind),
        Body::full(serde_json::json!({"Message": message, "Reason": reason}).to_string()),
    )
}

/// `RequestThrottledException` for `reason` (HTTP 400, as EBS answers it).
fn throttled(reason: Reason) -> (http::response::Builder, Body) {
    error(
        400,
        "RequestThrottledException",
        reason.as_str(),
        match reason {
            Reason::Account => {
                "The request rate exceeded the account's EBS direct-API quota (emulated)"
            }
            Reason::Resource => {
                "The request rate exceeded the snapshot's GetSnapshotBlock quota (emulated)"
            }
        },
    )
}

/// `ResourceNotFoundException` for snapshot `id`.
fn not_found(id: &str) -> (http::response::Builder, Body) {
    error(
        404,
        "ResourceNotFoundException",
        "SNAPSHOT_NOT_FOUND",
        &format!("The snapshot {id} does not exist"),
    )
}
