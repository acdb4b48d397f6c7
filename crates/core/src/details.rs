//! What each custody event says, typed: one struct per [`Action`], the only way details are
//! written into an event and read back out of one.
//!
//! An event stores its details as a JSON object (`details` in [`crate::Event`]), the format
//! auditors read and that earlier versions wrote; the field names here are that format. A step
//! builds its [`Details`] value and hands it to [`crate::EventDraft::new`], which takes the action
//! from the variant, so an action cannot carry another action's details. Readers (resume, reports)
//! call [`crate::Event::details`] and match on the variant instead of looking up string keys.
//!
//! Fields a step only knows when it succeeds (or only when it fails) are optional and left out of
//! the stored object when absent, as earlier versions did; every optional field reads as absent
//! from an event that lacks it, so events written by earlier versions keep reading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::action::Action;
use crate::layout::Layout;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The instance (and its account) a collection event is about. Stored beside the step's own
/// details in every event of `collect`; export and verify events have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The instance id.
    pub instance: String,
    /// The member account that owns it.
    pub member_account: String,
}

/// Which copy of a volume a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The member-account snapshot of the volume (kept as evidence).
    Original,
    /// The member-account copy re-encrypted with the forensic key (deleted afterwards).
    Intermediate,
    /// The forensic-account copy (the evidence snapshot).
    Forensic,
}

impl Stage {
    /// The name stored in events and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Original => "original",
            Stage::Intermediate => "intermediate",
            Stage::Forensic => "forensic",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of evidence an item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A volume's image, from a forensic-account snapshot.
    Volume,
    /// The DescribeInstances record of the instance.
    InstanceRecord,
    /// The instance's console output.
    ConsoleOutput,
    /// CloudTrail LookupEvents pages of the case's subjects over a window, each stored with the
    /// exact request that produced it, and the timeline derived from them.
    CloudtrailEvents,
    /// A trail's log files and digest files over a window, copied from its bucket and validated
    /// as `aws cloudtrail validate-logs` does.
    CloudtrailLogs,
    /// The instance's memory, captured on the host through SSM with AVML (LiME format).
    Memory,
}

impl ItemKind {
    /// The name used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Volume => "volume",
            ItemKind::InstanceRecord => "instance-record",
            ItemKind::ConsoleOutput => "console-output",
            ItemKind::CloudtrailEvents => "cloudtrail-events",
            ItemKind::CloudtrailLogs => "cloudtrail-logs",
            ItemKind::Memory => "memory",
        }
    }
}

/// An evidence object stored under Object Lock: where, which version, its SHA-256 and size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Key in the evidence bucket.
    pub key: String,
    /// Version id S3 gave it.
    pub version_id: Option<String>,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The object was stored by an earlier run that died before recording it, and is taken
    /// as it stands (it is locked; it cannot be stored again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// When adopted and this run's own capture differed from it: that capture's SHA-256. It
    /// was not stored; the earlier capture is the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstored_sha256: Option<String>,
}

/// `collection.started`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionStarted {
    /// The tool and version that ran.
    pub tool: String,
    /// Which run of this case and instance (from 1).
    pub run: u32,
    /// Whether an earlier run had started.
    pub resumed: bool,
}

/// `bucket.checked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketChecked {
    /// The evidence bucket.
    pub bucket: String,
    /// Its Object Lock mode.
    pub object_lock: String,
}

/// `role.assumed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssumed {
    /// The member role.
    pub role_arn: String,
    /// The STS session name (named for the case).
    pub session_name: String,
    /// The STS source identity.
    pub source_identity: String,
}

/// `instance.recorded`: the DescribeInstances answer stored (the object's fields are absent
/// when the step failed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecorded {
    /// Attached EBS volumes, device name to volume id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, String>>,
    /// The instance's availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// The stored record.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredObject>,
}

/// `console.recorded`: the console output stored (absent when the step failed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleRecorded {
    /// The stored output.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredObject>,
}

/// `snapshots.requested`: written before CreateSnapshots, so that a lost answer is adopted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsRequested {
    /// The snapshots' description (found again by it).
    pub description: String,
    /// Tags put on them.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One volume's snapshot made by CreateSnapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedSnapshot {
    /// Device name on the instance.
    pub device: String,
    /// The volume.
    pub volume_id: String,
    /// Its snapshot.
    pub snapshot_id: String,
}

/// `snapshots.created`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsCreated {
    /// One snapshot per attached volume (empty when the step failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<CreatedSnapshot>,
    /// Whether they were found by description after a lost answer rather than made now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
}

/// How a snapshot that did not complete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalState {
    /// AWS put it in state `error`: the next run makes this stage anew.
    Error,
    /// Still pending when forensnap stopped waiting.
    Pending,
    /// It no longer exists: the next run makes this stage anew.
    Gone,
}

/// What DescribeSnapshots said of a completed snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedSnapshot {
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its KMS key.
    pub kms_key_id: Option<String>,
    /// Size of the volume it holds, GiB.
    pub volume_size_gib: u64,
    /// The account that owns it.
    pub owner: String,
}

/// `snapshot.completed`: one stage's snapshot settled (or did not: then the event failed and
/// `final_state` says how it ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCompleted {
    /// The volume.
    pub volume_id: String,
    /// Which copy.
    pub stage: Stage,
    /// The snapshot.
    pub snapshot_id: String,
    /// How a snapshot that did not complete ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_state: Option<FinalState>,
    /// What AWS said of it once completed.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<CompletedSnapshot>,
}

/// `snapshot.copy-requested`: written before CopySnapshot, so that a lost answer is adopted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRequested {
    /// The volume.
    pub volume_id: String,
    /// Which copy is being made.
    pub stage: Stage,
    /// The snapshot copied.
    pub source: String,
    /// The copy's description (found again by it).
    pub description: String,
}

/// `snapshot.copied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCopied {
    /// The volume.
    pub volume_id: String,
    /// Which copy was made.
    pub stage: Stage,
    /// The snapshot copied.
    pub source: String,
    /// The copy (absent when the step failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The key it is encrypted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Tags put on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Found by description after a lost answer rather than made now.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adopted: bool,
}

/// `snapshot.shared` and `snapshot.unshared`: the forensic account's createVolumePermission
/// added to or removed from a member snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The volume.
    pub volume_id: String,
    /// The snapshot.
    pub snapshot_id: String,
    /// The account it is (or was) shared with.
    pub with: String,
    /// The snapshot no longer existed (removing a share only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub already_gone: bool,
}

/// `upload.aborted`: an open multipart upload of the case ended by `forensnap leftovers --end`
/// (its parts discarded; nothing stored is touched). A later run of the case reads that item
/// again from its first part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAborted {
    /// The object the upload was for.
    pub key: String,
    /// S3's upload id.
    pub upload_id: String,
    /// Parts it held.
    pub parts: u32,
    /// Bytes those parts held.
    pub bytes: u64,
    /// It had ended already (S3 answered NoSuchUpload).
    #[serde(default, skip_serializing_if = "is_false")]
    pub already_gone: bool,
}

/// `snapshot.deleted`: an intermediate copy deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDeleted {
    /// The volume.
    pub volume_id: String,
    /// Which copy.
    pub stage: Stage,
    /// The snapshot.
    pub snapshot_id: String,
    /// It no longer existed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub already_gone: bool,
}

/// One volume's evidence snapshot, as preservation ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedSnapshot {
    /// Device name on the instance.
    pub device: String,
    /// The volume.
    pub volume_id: String,
    /// The member-account snapshot.
    pub member_snapshot_id: String,
    /// The forensic-account snapshot.
    pub snapshot_id: String,
    /// Its key.
    pub kms_key_id: String,
}

/// `preservation.completed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservationCompleted {
    /// Every volume's evidence snapshot.
    #[serde(default)]
    pub volumes: Vec<PreservedSnapshot>,
}

/// `acquisition.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquisitionStarted {
    /// The evidence item.
    pub item: String,
    /// The volume.
    pub volume_id: String,
    /// What the data object holds.
    pub layout: Layout,
}

/// What an acquisition stored, as `acquisition.completed` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquiredData {
    /// The volume.
    pub volume_id: String,
    /// The data object's key.
    pub key: String,
    /// Its version.
    pub version_id: Option<String>,
    /// SHA-256 of the whole logical volume.
    pub image_sha256: String,
    /// SHA-256 of the data object.
    pub data_sha256: String,
    /// S3's composite checksum of the data object (uploads with SHA-256 parts).
    pub composite_sha256: Option<String>,
    /// S3's CRC-64/NVME of the whole data object, base64 (uploads with CRC-64/NVME parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_crc64nvme: Option<String>,
    /// SHA-256 of the block map.
    pub block_map_sha256: String,
    /// Blocks stored.
    pub blocks_stored: u64,
    /// Blocks whose AWS checksum was counted equal to their SHA-256 (absent in early cases).
    #[serde(default)]
    pub aws_checksums_matched: Option<u64>,
    /// Block answers read and thrown away (checksum mismatches read again).
    pub answers_discarded: u64,
    /// Parts kept from an earlier run.
    pub resumed_parts: u32,
}

/// `acquisition.completed` (the data is absent when the step failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquisitionCompleted {
    /// The evidence item.
    pub item: String,
    /// What was stored.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub data: Option<AcquiredData>,
}

/// `evidence.sealed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceSealed {
    /// The evidence item.
    pub item: String,
    /// What it holds.
    pub kind: ItemKind,
    /// Its prefix in the evidence bucket.
    pub prefix: String,
    /// Payload files and their SHA-256, as the bag's manifest lists them.
    pub payload_sha256: Vec<(String, String)>,
}

/// One item of a finished collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectedItem {
    /// The evidence item.
    pub id: String,
    /// What it holds.
    pub kind: ItemKind,
    /// SHA-256 of its image (volumes only).
    pub image_sha256: Option<String>,
}

/// `collection.completed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionCompleted {
    /// Every item collected.
    #[serde(default)]
    pub evidence: Vec<CollectedItem>,
}

/// `collection.failed` (its error says why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionFailed {
    /// How many evidence items failed (absent when preservation itself failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_items: Option<u64>,
}

/// How an export or a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Exported data matched its recorded hash.
    Match,
    /// It did not.
    Mismatch,
    /// Every check passed.
    Pass,
    /// A check failed.
    Fail,
}

/// `evidence.exported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceExported {
    /// The evidence item.
    pub item: String,
    /// Where it was written.
    pub out: String,
    /// The image SHA-256 the export computed (absent when it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// Blocks checked against the block map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_checked: Option<u64>,
    /// `match` or `mismatch`.
    pub result: Verdict,
}

/// `case.verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseVerified {
    /// Checks run.
    pub checks: u64,
    /// Checks failed.
    pub failed: u64,
    /// Evidence items verified.
    pub items: u64,
    /// Objects whose Object Lock was checked.
    pub objects_locked: u64,
    /// SHA-256 of the public key signatures were checked with.
    pub public_key_sha256: String,
    /// `pass` or `fail`.
    pub result: Verdict,
}

/// `request.received`: a collection request the daemon took from its queue for this case, or
/// merged into it (a second finding about the instance, a repeated request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestReceived {
    /// The queue's message id.
    pub message_id: String,
    /// `submit`, `security-hub` or `guardduty`.
    pub source: String,
    /// The case the request asked for (another case's id when it was merged into this one).
    pub requested_case: String,
    /// Member account of the instance.
    pub account: String,
    /// Region of the instance.
    pub region: String,
    /// The instance.
    pub instance: String,
    /// Why, as the request says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request as intake read it, source details included (JSON).
    pub request: String,
    /// Whether it was merged into this case rather than starting it.
    pub merged: bool,
}

/// One file of a stored custody report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFile {
    /// `pdf`, `csv` or `json`.
    pub format: String,
    /// The stored object.
    #[serde(flatten)]
    pub stored: StoredObject,
}

/// `report.generated`: a custody report made from a fresh verification, stored in the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportGenerated {
    /// The report's id.
    pub report_id: String,
    /// The last event the report covers.
    pub covers_seq: u64,
    /// The verification it states: `pass` or `fail`.
    pub verification: Verdict,
    /// The files stored.
    pub files: Vec<ReportFile>,
}

/// One LookupEvents query of a case: one lookup attribute, and why it is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailQuery {
    /// The attribute key (`ResourceName`, `Username`, `AccessKeyId`).
    pub key: String,
    /// Its value.
    pub value: String,
    /// Why: `instance`, `volume`, `network-interface`, `instance-profile`, `instance-session`,
    /// `principal`.
    pub reason: String,
    /// Pages stored (when the query is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
    /// Events in those pages (when the query is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// `cloudtrail.lookup-started`: the window and queries of a CloudTrail events item, fixed by
/// the first run so that a resumed run asks the same questions over the same window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailLookupStarted {
    /// The evidence item.
    pub item: String,
    /// The account whose CloudTrail is read.
    pub account: String,
    /// Its region.
    pub region: String,
    /// Start of the window, RFC 3339.
    pub start: String,
    /// End of the window, RFC 3339.
    pub end: String,
    /// The queries.
    pub queries: Vec<TrailQuery>,
}

/// `cloudtrail.events-stored`: every query's pages stored and checked complete (absent fields
/// when the step failed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEventsStored {
    /// The evidence item.
    pub item: String,
    /// The queries, with their pages and events.
    #[serde(default)]
    pub queries: Vec<TrailQuery>,
    /// LookupEvents requests answered.
    #[serde(default)]
    pub requests: u64,
    /// Requests CloudTrail throttled (each retried).
    #[serde(default)]
    pub throttled: u64,
    /// Distinct events in the timeline.
    #[serde(default)]
    pub timeline_rows: u64,
    /// Timeline rows flagged (persistence, defence evasion, ...).
    #[serde(default)]
    pub flagged: u64,
}

/// A problem the trail validation found, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailFinding {
    /// A stable code (`digest-signature-invalid`, `log-hash-mismatch`, ...).
    pub code: String,
    /// The file it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong, in `aws cloudtrail validate-logs`' words.
    pub text: String,
    /// Whether it fails the validation (a gap in delivery does not).
    pub failure: bool,
}

/// `cloudtrail.logs-stored`: a trail's digest and log files over the window copied into the
/// case and validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailLogsStored {
    /// The evidence item.
    pub item: String,
    /// The trail's ARN.
    pub trail_arn: String,
    /// Its bucket.
    pub bucket: String,
    /// Its key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Start of the window, RFC 3339.
    pub start: String,
    /// End of the window, RFC 3339.
    pub end: String,
    /// Digest files copied.
    #[serde(default)]
    pub digest_files: u64,
    /// Log files copied.
    #[serde(default)]
    pub log_files: u64,
    /// Digest files whose signature, key and chain held.
    #[serde(default)]
    pub digests_valid: u64,
    /// Log files whose SHA-256 matched their digest.
    #[serde(default)]
    pub logs_valid: u64,
    /// What failed, file by file.
    #[serde(default)]
    pub findings: Vec<TrailFinding>,
    /// Fingerprints of the CloudTrail public keys used.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Whether the trail was logging when copied (GetTrailStatus); absent when not asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
    /// When logging was last stopped, as GetTrailStatus reports it (an attacker blinding the
    /// defenders stops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
}

/// `memory.capture-requested`: everything the host is given and where the image goes, recorded
/// before SendCommand (the command id follows in `memory.captured`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryCaptureRequested {
    /// The evidence item.
    pub item: String,
    /// The instance.
    pub instance: String,
    /// The SSM document run.
    pub document: String,
    /// Its version and SHA-256 as SSM reports them (DescribeDocument).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_version: Option<String>,
    /// The document's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_hash: Option<String>,
    /// The pinned AVML binary's key in the evidence bucket.
    pub avml_key: String,
    /// Its SHA-256 (the host checks it before running it).
    pub avml_sha256: String,
    /// The image's key.
    pub key: String,
    /// The multipart upload the host writes parts of.
    pub upload_id: String,
    /// Bytes per part.
    pub part_bytes: u64,
    /// Part URLs presigned.
    pub parts: u32,
    /// The instance's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// The instance type's memory, MiB (DescribeInstanceTypes).
    pub memory_mib: u64,
    /// When the presigned URLs expire, RFC 3339.
    pub urls_expire: String,
    /// The transfer bucket holding the plan until the capture ends (never the evidence bucket:
    /// the plan's URLs carry the collector's key id).
    pub transfer_bucket: String,
    /// The plan's key there.
    pub plan_key: String,
    /// The plan's SHA-256 (its URLs are what the host could write to).
    pub plan_sha256: String,
    /// The command's timeout.
    pub timeout_seconds: u32,
}

/// `memory.command-sent`: SSM accepted the capture command (a run killed while it runs finds
/// the command again by this id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryCommandSent {
    /// The evidence item.
    pub item: String,
    /// The SSM command id.
    pub command_id: String,
}

/// `memory.captured`: the command's outcome, both hashes and the image (absent fields when the
/// step failed before learning them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryCaptured {
    /// The evidence item.
    pub item: String,
    /// The SSM command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Its final status (`Success`, `Failed`, `TimedOut`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The script's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<i64>,
    /// The host's SHA-256 of the image it streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_sha256: Option<String>,
    /// forensnap's SHA-256 of the image as stored in S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// The image's size as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Parts stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// The image's key and version, when it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredObject>,
    /// LiME ranges read from the stored image's headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lime_ranges: Option<u64>,
    /// When the command ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it ended, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// A failure to read an event's details.
#[derive(Debug, thiserror::Error)]
#[error("custody event {action}: its details do not read as this version records them: {source}")]
pub struct DetailsError {
    /// The event's action.
    pub action: Action,
    /// Cause.
    pub source: serde_json::Error,
}

macro_rules! details {
    ($($name:ident),* $(,)?) => {
        /// An event's details, one variant per [`Action`] (`snapshot.shared` and
        /// `snapshot.unshared` both carry a [`Share`]).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Details {
            $(
                #[doc = concat!("See [`", stringify!($name), "`].")]
                $name($name),
            )*
            /// See [`Share`].
            SnapshotShared(Share),
            /// See [`Share`].
            SnapshotUnshared(Share),
        }

        impl Details {
            /// The action these details belong to.
            pub fn action(&self) -> Action {
                match self {
                    $(Details::$name(_) => Action::$name,)*
                    Details::SnapshotShared(_) => Action::SnapshotShared,
                    Details::SnapshotUnshared(_) => Action::SnapshotUnshared,
                }
            }

            /// The stored JSON object.
            pub fn to_map(&self) -> Map<String, Value> {
                let value = match self {
                    $(Details::$name(d) => serde_json::to_value(d),)*
                    Details::SnapshotShared(d) | Details::SnapshotUnshared(d) => {
                        serde_json::to_value(d)
                    }
                };
                match value {
                    Ok(Value::Object(map)) => map,
                    // Every details type is a struct of plain fields: it serialises to an object.
                    _ => Map::new(),
                }
            }

            /// Read the details of an event of `action` from its stored object (fields this
            /// version does not know, such as the subject's, are ignored).
            pub fn parse(action: Action, map: &Map<String, Value>) -> Result<Details, DetailsError> {
                let value = Value::Object(map.clone());
                let read = match action {
                    $(Action::$name => serde_json::from_value(value).map(Details::$name),)*
                    Action::SnapshotShared => serde_json::from_value(value).map(Details::SnapshotShared),
                    Action::SnapshotUnshared => serde_json::from_value(value).map(Details::SnapshotUnshared),
                };
                read.map_err(|source| DetailsError { action, source })
            }
        }

        $(
            impl From<$name> for Details {
                fn from(d: $name) -> Details {
                    Details::$name(d)
                }
            }
        )*
    };
}

details!(
    ReportGenerated,
    MemoryCaptureRequested,
    MemoryCommandSent,
    MemoryCaptured,
    TrailLookupStarted,
    TrailEventsStored,
    TrailLogsStored,
    RequestReceived,
    CollectionStarted,
    BucketChecked,
    RoleAssumed,
    InstanceRecorded,
    ConsoleRecorded,
    SnapshotsRequested,
    SnapshotsCreated,
    SnapshotCompleted,
    CopyRequested,
    SnapshotCopied,
    SnapshotDeleted,
    PreservationCompleted,
    AcquisitionStarted,
    AcquisitionCompleted,
    EvidenceSealed,
    CollectionCompleted,
    CollectionFailed,
    EvidenceExported,
    CaseVerified,
    UploadAborted,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(details: Details) {
        let map = details.to_map();
        let back = Details::parse(details.action(), &map).expect("parses");
        assert_eq!(back, details);
    }

    #[test]
    fn details_read_back_as_written() {
        round_trip(Details::SnapshotCompleted(SnapshotCompleted {
            volume_id: "vol-1".into(),
            stage: Stage::Forensic,
            snapshot_id: "snap-1".into(),
            final_state: None,
            completed: Some(CompletedSnapshot {
                encrypted: true,
                kms_key_id: None,
                volume_size_gib: 8,
                owner: "111122223333".into(),
            }),
        }));
        round_trip(Details::SnapshotCompleted(SnapshotCompleted {
            volume_id: "vol-1".into(),
            stage: Stage::Original,
            snapshot_id: "snap-1".into(),
            final_state: Some(FinalState::Gone),
            completed: None,
        }));
        round_trip(Details::SnapshotUnshared(Share {
            volume_id: "vol-1".into(),
            snapshot_id: "snap-1".into(),
            with: "999988887777".into(),
            already_gone: true,
        }));
        round_trip(Details::AcquisitionCompleted(AcquisitionCompleted {
            item: "vol-1".into(),
            data: None,
        }));
        round_trip(Details::InstanceRecorded(InstanceRecorded {
            volumes: Some(BTreeMap::from([("/dev/xvda".into(), "vol-1".into())])),
            availability_zone: Some("us-east-1a".into()),
            stored: Some(StoredObject {
                key: "cases/c/items/i/data/describe-instances.json".into(),
                version_id: Some("v1".into()),
                sha256: "ab".repeat(32),
                size: 10,
                adopted: false,
                unstored_sha256: None,
            }),
        }));
        round_trip(Details::UploadAborted(UploadAborted {
            key: "cases/c/evidence/vol-1/data/blocks.bin".into(),
            upload_id: "u-1".into(),
            parts: 3,
            bytes: 15 << 20,
            already_gone: false,
        }));
        round_trip(Details::ConsoleRecorded(ConsoleRecorded {
            stored: Some(StoredObject {
                key: "cases/c/items/i/data/console-output.txt".into(),
                version_id: Some("v2".into()),
                sha256: "cd".repeat(32),
                size: 12,
                adopted: true,
                unstored_sha256: Some("ef".repeat(32)),
            }),
        }));
    }

    #[test]
    fn the_stored_object_keeps_the_field_names_earlier_versions_wrote() {
        let map = Details::SnapshotCompleted(SnapshotCompleted {
            volume_id: "vol-1".into(),
            stage: Stage::Intermediate,
            snapshot_id: "snap-1".into(),
            final_state: Some(FinalState::Error),
            completed: None,
        })
        .to_map();
        let text = serde_json::to_string(&map).expect("json");
        assert_eq!(
            text,
            r#"{"final_state":"error","snapshot_id":"snap-1","stage":"intermediate","volume_id":"vol-1"}"#
        );
    }

    #[test]
    fn an_event_missing_a_required_detail_is_named() {
        let err = Details::parse(Action::SnapshotShared, &Map::new()).expect_err("refused");
        assert_eq!(err.action, Action::SnapshotShared);
        assert!(err.to_string().contains("snapshot.shared"), "{err}");
    }

    #[test]
    fn every_action_has_details() {
        // A failed step of every action records at least an empty object; parse must at least
        // know the action (no panic, an error naming it when fields are missing).
        for action in Action::ALL {
            match Details::parse(action, &Map::new()) {
                Ok(d) => assert_eq!(d.action(), action),
                Err(e) => assert_eq!(e.action, action),
            }
        }
    }
}
