//! EC2 of one account and region, as the preservation step uses it. Implementations record the
//! AWS request id of every call so custody events can cite it.

use std::collections::BTreeMap;
use std::future::Future;

use forensnap_store::{Called, CloudError};

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
    /// Its instance type (`t3.micro`): how much memory a capture must take.
    pub instance_type: Option<String>,
    /// `windows` for a Windows instance, else absent (EC2's `Platform`).
    pub platform: Option<String>,
    /// The DescribeInstances reservation as JSON, the evidence itself.
    pub json: Vec<u8>,
}

/// EC2 (and the KMS lookups EC2 decisions need) of one account and region.
pub trait Ec2: Send + Sync {
    /// The account acted in.
    fn account(&self) -> &str;
    /// The region acted in.
    fn region(&self) -> &str;
    /// The caller ARN (STS GetCallerIdentity); for a member account this is the moment the
    /// role is assumed, so a refused AssumeRole surfaces here, before anything else.
    fn whoami(&self) -> impl Future<Output = Result<Called<String>, CloudError>> + Send;
    /// DescribeInstances of one instance; `Ok(None)` when it does not exist.
    fn describe_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Called<Option<InstanceRecord>>, CloudError>> + Send;
    /// GetConsoleOutput, decoded (empty when the instance has none).
    fn console_output(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Called<Vec<u8>>, CloudError>> + Send;
    /// CreateSnapshots of every attached volume (boot included), crash-consistent.
    fn create_snapshots(
        &self,
        instance_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Called<Vec<SnapshotInfo>>, CloudError>> + Send;
    /// DescribeSnapshots of one snapshot this account owns or may use; `Ok(None)` when unknown.
    fn describe_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Called<Option<SnapshotInfo>>, CloudError>> + Send;
    /// Own snapshots with exactly this description (to adopt the results of a lost answer).
    fn find_snapshots(
        &self,
        description: &str,
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, CloudError>> + Send;
    /// CopySnapshot into this account and region, encrypted with `kms_key_id`.
    fn copy_snapshot(
        &self,
        source_snapshot_id: &str,
        source_region: &str,
        kms_key_id: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Called<String>, CloudError>> + Send;
    /// ModifySnapshotAttribute createVolumePermission add (`share`) or remove for one account.
    fn set_share(
        &self,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> impl Future<Output = Result<Called<()>, CloudError>> + Send;
    /// The accounts snapshot `snapshot_id` is shared with (DescribeSnapshotAttribute
    /// createVolumePermission; `all` when public).
    fn shared_with(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Called<Vec<String>>, CloudError>> + Send;
    /// DeleteSnapshot.
    fn delete_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<Called<()>, CloudError>> + Send;
    /// Whether a KMS key is AWS managed (`aws/ebs`), which EC2 refuses to share.
    fn is_aws_managed_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;
}
