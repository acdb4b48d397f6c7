//! What the emulator has served, counted with atomics (no lock on the request path): read from
//! Rust with [`Stats::snapshot`] or over HTTP at `GET /_emulator/stats` (the same JSON).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// GetSnapshotBlock answered with data.
    pub(crate) get_served: AtomicU64,
    /// Block bytes sent.
    pub(crate) get_bytes: AtomicU64,
    /// GetSnapshotBlock refused by the account bucket.
    pub(crate) get_throttled_account: AtomicU64,
    /// GetSnapshotBlock refused by a snapshot's bucket.
    pub(crate) get_throttled_resource: AtomicU64,
    /// GetSnapshotBlock refused at random (fault injection).
    pub(crate) get_throttled_injected: AtomicU64,
    /// GetSnapshotBlock refused for another reason (unknown snapshot, bad index or token).
    pub(crate) get_failed: AtomicU64,
    /// ListSnapshotBlocks answered with a page.
    pub(crate) list_served: AtomicU64,
    /// ListSnapshotBlocks refused by the account bucket.
    pub(crate) list_throttled: AtomicU64,
    /// S3 requests answered (any operation, any outcome).
    pub(crate) s3_requests: AtomicU64,
    /// S3 parts stored.
    pub(crate) s3_parts: AtomicU64,
    /// S3 object and part bytes received and stored.
    pub(crate) s3_bytes_in: AtomicU64,
    /// S3 object bytes sent.
    pub(crate) s3_bytes_out: AtomicU64,
    /// Multipart uploads completed.
    pub(crate) s3_completed: AtomicU64,
    /// Uploads refused for a checksum that did not match (`BadDigest`).
    pub(crate) s3_bad_digest: AtomicU64,
    /// Request bodies cut for idleness (`RequestTimeout`).
    pub(crate) s3_timeouts: AtomicU64,
}

/// Add `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// GetSnapshotBlock.
    pub get_snapshot_block: GetStats,
    /// ListSnapshotBlocks.
    pub list_snapshot_blocks: ListStats,
    /// The S3 stand-in.
    pub s3: S3Stats,
}

/// GetSnapshotBlock counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GetStats {
    /// Answered with data.
    pub served: u64,
    /// Block bytes sent.
    pub bytes: u64,
    /// Refused by the account bucket (`ACCOUNT_THROTTLED`).
    pub throttled_account: u64,
    /// Refused by a snapshot's bucket (`RESOURCE_LEVEL_THROTTLE`).
    pub throttled_resource: u64,
    /// Refused at random (answered as `ACCOUNT_THROTTLED`).
    pub throttled_injected: u64,
    /// Refused for another reason.
    pub failed: u64,
}

/// ListSnapshotBlocks counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ListStats {
    /// Pages answered.
    pub served: u64,
    /// Refused by the account bucket.
    pub throttled: u64,
}

/// S3 counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct S3Stats {
    /// Requests answered.
    pub requests: u64,
    /// Parts stored.
    pub parts: u64,
    /// Bytes received and stored.
    pub bytes_in: u64,
    /// Object bytes sent.
    pub bytes_out: u64,
    /// Multipart uploads completed.
    pub completed_uploads: u64,
    /// `BadDigest` refusals.
    pub bad_digest: u64,
    /// `RequestTimeout` cuts.
    pub request_timeouts: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            get_snapshot_block: GetStats {
                served: get(&self.get_served),
                bytes: get(&self.get_bytes),
                throttled_account: get(&self.get_throttled_account),
                throttled_resource: get(&self.get_throttled_resource),
                throttled_injected: get(&self.get_throttled_injected),
                failed: get(&self.get_failed),
            },
            list_snapshot_blocks: ListStats {
                served: get(&self.list_served),
                throttled: get(&self.list_throttled),
            },
            s3: S3Stats {
                requests: get(&self.s3_requests),
                parts: get(&self.s3_parts),
                bytes_in: get(&self.s3_bytes_in),
                bytes_out: get(&self.s3_bytes_out),
                completed_uploads: get(&self.s3_completed),
                bad_digest: get(&self.s3_bad_digest),
                request_timeouts: get(&self.s3_timeouts),
            },
        }
    }
}
