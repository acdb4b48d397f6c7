//! The seams of the preservation step. Each trait is one AWS-facing capability of one account;
//! implementations record the AWS request id of every call so custody events can cite it.

use std::collections::BTreeMap;
use std::future::Future;

/// A value and the AWS request id of the call that produced it.
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

/// A failed AWS call: the operation, AWS's error code and message, and the request id.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {}{message}{}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(), request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
pub struct AwsError {
    /// The API operation (`CreateSnapshots`).
    pub operation: &'static str,
    /// AWS's error code (`AccessDenied`), if it answered.
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// The request id, if any.
    pub request_id: Option<String>,
}

impl AwsError {
    /// Whether the failure is AWS's side (5xx, throttling, no answer), worth simply retrying.
    pub fn is_transient(&self) -> bool {
        match self.code.as_deref() {
            None => true,
            Some(code) => {
                code.starts_with("Internal")
                    || code.contains("Unavailable")
                    || code.contains("Throttl")
                    || matches!(code, "RequestLimitExceeded" | "SlowDown" | "RequestTimeout")
            }
        }
    }

    /// Whether AWS said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.contains("NotFound") || c == "NoSuchKey")
    }
}

/// A snapshot's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapState {
    /// Still being made.
    Pending,
    /// Readable.
    Completed,
    /// Failed; `SnapshotInfo::message` says why.
    Error,
}

/// What DescribeSnapshots says of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot id.
    pub id: String,
    /// Volume it was made from (arbitrary for copies).
    pub volume_id: String,
    /// State.
    pub state: SnapState,
    /// Progress as AWS reports it (`"42%"`).
    pub progress: Option<String>,
    /// Why it failed.
    pub message: Option<String>,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its KMS key ARN.
    pub kms_key_id: Option<String>,
    /// Owning account.
    pub owner: String,
    /// Size of the source volume, GiB.
    pub volume_size_gib: u64,
    /// When it was started, RFC 3339.
    pub start_time: Option<String>,
}

/// The point-in-time record of an instance.
#[derive(Debug, Clone)]
pub struct InstanceRecord {
    /// Instance id.
    pub instance_id: String,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Attached EBS volumes: device name -> volume id.
    pub volumes: BTreeMap<String, String>,
    /// The DescribeInstances reservation as JSON, the evidence itself.
    pub json: Vec<u8>,
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

/// EC2 (and the KMS lookups EC2 decisions need) of one account and region.
pub trait Ec2: Send + Sync {
    /// The account acted in.
    fn account(&self) -> &str;
    /// The region acted in.
    fn region(&self) -> &str;
    /// The caller ARN (STS GetCallerIdentity); for a member account this is the moment the
    /// role is assumed, so a refused AssumeRole surfaces here, before anything else.
    fn whoami(&self) -> impl Future<Output = Result<Called<String>, AwsError>> + Send;
    /// DescribeInstances of one instance; `Ok(None)` when it does not exist.
    fn describe_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Called<Option<InstanceRecord>>, AwsError>> + Send;
    /// GetConsoleOutput, decoded (empty when the instance has none).
    fn console_output(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Called<Vec<u8>>, AwsError>> + Send;
    /// CreateSnapshots of every attached volume (boot included), crash-consistent.
    fn create_snapshots(
        &self,
        instance_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Called<Vec<SnapshotInfo>>, AwsError>> + Send;
    /// DescribeSnapshots of one snapshot this account owns or may use; `Ok(None)` when unknown.
    fn describe_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Called<Option<SnapshotInfo>>, AwsError>> + Send;
    /// Own snapshots with exactly this description (to adopt the results of a lost answer).
    fn find_snapshots(
        &self,
        description: &str,
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, AwsError>> + Send;
    /// CopySnapshot into this account and region, encrypted with `kms_key_id`.
    fn copy_snapshot(
        &self,
        source_snapshot_id: &str,
        source_region: &str,
        kms_key_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Called<String>, AwsError>> + Send;
    /// ModifySnapshotAttribute createVolumePermission add (`share`) or remove for one account.
    fn set_share(
        &self,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> impl Future<Output = Result<Called<()>, AwsError>> + Send;
    /// DeleteSnapshot.
    fn delete_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Called<()>, AwsError>> + Send;
    /// Whether a KMS key is AWS managed (`aws/ebs`), which EC2 refuses to share.
    fn is_aws_managed_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
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

/// The forensic account's evidence bucket.
pub trait EvidenceStore: Send + Sync {
    /// Bucket name.
    fn bucket(&self) -> &str;
    /// Object Lock configuration and versioning of the bucket.
    fn lock_state(&self) -> impl Future<Output = Result<Called<BucketLock>, AwsError>> + Send;
    /// Store bytes under COMPLIANCE retention (and legal hold when configured) with their
    /// SHA-256 checked by S3; refuses to overwrite an existing key.
    fn put_locked(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<Called<Stored>, AwsError>> + Send;
    /// Keys under a prefix, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// An object's bytes.
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, AwsError>> + Send;
}
