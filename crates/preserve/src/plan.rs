//! What a preservation run is told (the [`Plan`]), what it reports as it goes ([`Progress`]) and
//! what it returns ([`Preserved`]).

use std::collections::BTreeMap;

use forensnap_core::CaseId;
use forensnap_ports::SnapshotInfo;
use forensnap_store::Stored;

use crate::wait::Backoff;

/// Tag every intermediate copy carries; the member role only deletes snapshots so tagged.
pub const INTERMEDIATE_TAG: (&str, &str) = ("forensnap:intermediate", "true");

/// Everything one run needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The case.
    pub case: CaseId,
    /// Member account of the instance.
    pub member_account: String,
    /// Region of the instance.
    pub member_region: String,
    /// The instance.
    pub instance_id: String,
    /// The forensic account.
    pub forensic_account: String,
    /// ARN of the forensic EBS key (resolved from an alias if one was configured).
    pub forensic_key_arn: String,
    /// The collector role assumed in the member account (for the record).
    pub role_arn: String,
    /// STS session name used.
    pub session_name: String,
    /// STS SourceIdentity used.
    pub source_identity: String,
    /// Tags on member-account snapshots (already filled in with the case).
    pub member_tags: BTreeMap<String, String>,
    /// Description of member-account snapshots (already filled in).
    pub description: String,
    /// Re-encrypt every snapshot in the member account, not only those that need it.
    pub reencrypt_always: bool,
    /// Volumes processed (and copies in flight) at once per account.
    pub max_concurrent_copies: usize,
    /// Polling schedule for snapshot states.
    pub backoff: Backoff,
    /// Name and version of the tool, for the record.
    pub tool: String,
    /// Days every evidence object must stay locked: the bucket's default COMPLIANCE retention
    /// (which every object gets; forensnap sends no per-object retention) must be at least this.
    pub retention_days: u32,
}

/// Progress reports, implemented by the CLI (bars on a terminal, lines otherwise).
pub trait Progress: Send + Sync {
    /// A snapshot of `volume_id` at `stage` was polled.
    fn snapshot(&self, volume_id: &str, stage: &str, info: &SnapshotInfo);
    /// A step of the run happened.
    fn step(&self, message: &str);
}

/// Progress that reports nothing.
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn snapshot(&self, _: &str, _: &str, _: &SnapshotInfo) {}
    fn step(&self, _: &str) {}
}

/// What one volume ended as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreservedVolume {
    /// Device name.
    pub device: String,
    /// Volume id.
    pub volume_id: String,
    /// The member-account snapshot (kept as evidence).
    pub member_snapshot_id: String,
    /// The member-account re-encrypted copy, deleted after the forensic copy completed.
    pub intermediate_snapshot_id: Option<String>,
    /// The forensic-account copy.
    pub snapshot_id: String,
    /// Its KMS key.
    pub kms_key_id: String,
    /// Volume size, GiB.
    pub size_gib: u64,
}

/// What a run preserved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preserved {
    /// Case.
    pub case: String,
    /// Member account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Instance.
    pub instance_id: String,
    /// The stored DescribeInstances record, when this run stored it.
    pub instance_record: Option<StoredRef>,
    /// The stored console output, when this run stored it.
    pub console_output: Option<StoredRef>,
    /// Volumes.
    pub volumes: Vec<PreservedVolume>,
    /// Custody events in the case after this run.
    pub custody_events: u64,
    /// SHA-256 of the last custody event.
    pub custody_head_sha256: String,
}

/// Where an evidence object was stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRef {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: Option<String>,
    /// SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

impl From<Stored> for StoredRef {
    fn from(s: Stored) -> Self {
        StoredRef {
            bucket: s.bucket,
            key: s.key,
            version_id: s.version_id,
            sha256: s.sha256,
            size: s.size,
        }
    }
}
