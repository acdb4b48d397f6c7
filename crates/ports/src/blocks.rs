//! The block source seam: what the acquisition engine needs from the EBS direct APIs.

use std::future::Future;

use bytes::Bytes;

/// A block EBS lists (it holds data); unlisted blocks read as zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlock {
    /// Block index.
    pub index: u64,
    /// Token for GetSnapshotBlock (valid 7 days).
    pub token: String,
}

/// One ListSnapshotBlocks page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPage {
    /// Blocks, ascending.
    pub blocks: Vec<ListedBlock>,
    /// More pages follow (valid 60 minutes).
    pub next_token: Option<String>,
    /// Volume size in bytes.
    pub volume_bytes: u64,
    /// Block size in bytes.
    pub block_size: u64,
}

/// One GetSnapshotBlock answer, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBlock {
    /// The bytes, as read from the socket (shared onwards into the part upload, not copied).
    pub data: Bytes,
    /// `x-amz-Checksum`: base64 SHA-256 of the bytes as AWS computed them.
    pub checksum: String,
    /// `x-amz-Checksum-Algorithm`.
    pub algorithm: String,
    /// `x-amz-Data-Length`.
    pub data_length: u64,
}

/// Which quota a throttled read ran into, as AWS's `Reason` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// The snapshot's own quota (`RESOURCE_LEVEL_THROTTLE`): slow this snapshot's reads.
    Snapshot,
    /// The account's quota, shared by every snapshot read (`ACCOUNT_THROTTLED`).
    Account,
    /// Not said (or a dependency of EBS): slow both.
    Unknown,
}

impl ThrottleScope {
    /// The scope of AWS's `RequestThrottledException` reason.
    pub fn from_reason(reason: Option<&str>) -> Self {
        match reason {
            Some("RESOURCE_LEVEL_THROTTLE") => ThrottleScope::Snapshot,
            Some("ACCOUNT_THROTTLED") => ThrottleScope::Account,
            _ => ThrottleScope::Unknown,
        }
    }
}

/// A failed read, classified for retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// `RequestThrottledException` and kin: slow down (the quota it names), then retry.
    #[error("throttled: {1}")]
    Throttled(ThrottleScope, String),
    /// 5xx, timeouts, dropped connections: retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Access denied, validation, not found: retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

/// ListSnapshotBlocks and GetSnapshotBlock of the forensic account.
pub trait BlockSource: Send + Sync {
    /// One page of listed blocks at or after `starting_index` (or continuing `page_token`).
    fn list(
        &self,
        snapshot_id: &str,
        starting_index: u64,
        page_token: Option<&str>,
        max_results: u32,
    ) -> impl Future<Output = Result<BlockPage, SourceError>> + Send;
    /// One block.
    fn get(
        &self,
        snapshot_id: &str,
        index: u64,
        token: &str,
    ) -> impl Future<Output = Result<FetchedBlock, SourceError>> + Send;
}
