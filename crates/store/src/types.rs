//! What the store's calls return: stored objects, multipart parts, Object Lock state, versions.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A value and the AWS request id of the call that produced it (custody events cite it).
#[derive(Debug, Clone)]
pub struct Called<T> {
    /// The result.
    pub value: T,
    /// `x-amzn-RequestId` (or S3's `x-amz-request-id`), when AWS sent one.
    pub request_id: Option<String>,
}

impl<T> Called<T> {
    /// Wrap a value with its request id.
    pub fn new(value: T, request_id: Option<String>) -> Self {
        Called { value, request_id }
    }
}

/// An object stored under Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: Option<String>,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPart {
    /// Part number, from 1.
    pub number: u32,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the part, base64 (as S3 reports it).
    pub sha256: String,
    /// The part's ETag (CompleteMultipartUpload names parts by it).
    #[serde(default)]
    pub etag: String,
}

/// A completed multipart object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedObject {
    /// Version id.
    pub version_id: Option<String>,
    /// S3's composite checksum (`base64(sha256(part digests))-N`), when reported.
    pub composite_sha256: Option<String>,
}

/// S3's composite checksum of a multipart object made of `parts`:
/// `base64(SHA-256(part digest 1 || ... || part digest N))-N`.
pub fn composite_sha256(parts: &[StoredPart]) -> String {
    let mut digests = Vec::with_capacity(parts.len() * 32);
    for part in parts {
        digests.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&part.sha256)
                .unwrap_or_default(),
        );
    }
    format!(
        "{}-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&digests)),
        parts.len()
    )
}

/// The Object Lock state of the evidence bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLock {
    /// Object Lock enabled.
    pub enabled: bool,
    /// Default retention mode (`COMPLIANCE`, `GOVERNANCE`), if any.
    pub default_mode: Option<String>,
    /// Default retention days (years converted), if any.
    pub default_days: Option<u32>,
    /// Versioning status.
    pub versioning: Option<String>,
}

/// The Object Lock state of one stored object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// Retention mode (`COMPLIANCE`, `GOVERNANCE`), if any.
    pub mode: Option<String>,
    /// Retain-until, seconds since the epoch.
    pub retain_until: Option<i64>,
    /// Legal hold on.
    pub legal_hold: bool,
    /// When the object was written, seconds since the epoch.
    pub last_modified: Option<i64>,
}

/// One stored version of an object (or a delete marker hiding the object's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// A delete marker, not data.
    pub delete_marker: bool,
}
