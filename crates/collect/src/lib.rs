//! forensnap's collection of one case and instance: preservation ([`forensnap_preserve`]), then
//! every evidence snapshot acquired through the block source into an evidence item
//! ([`forensnap_acquire`]), and every item sealed as a BagIt bag: the volumes, the
//! DescribeInstances record and the console output. Each step is a custody event.
//!
//! Volumes are acquired at most `concurrent_volumes` at a time, every block read passing the
//! account's shared limiter as well as its snapshot's own. A volume that fails does not stop the
//! others; the run then ends with `collection.failed`, and running it again resumes: sealed items
//! are left alone, a finished acquisition is not read again, a partial one continues from its
//! stored parts.
//!
//! Generic over the seams (EC2, evidence store, block source, signer) so that the same
//! orchestration runs on the AWS adapters and, in unit tests, on in-memory fakes. Events go
//! through the custody service ([`forensnap_custody::Custody`]), shared by every task of the run.
//!
//! * [`plan`] -- the preservation and acquisition plans built from the config.
//! * [`recorded`] -- export and verification of a case, recorded as custody events.
//! * [`leftovers`] -- what an abandoned case left open or shared, listed and ended.
//! * [`memory`] -- the instance's RAM, captured on the host through SSM with a pinned AVML build
//!   and streamed into the case through presigned part URLs, both hashes compared.
//! * [`trail`] -- the member account's CloudTrail record of the case: LookupEvents pages, the
//!   trail's log and digest files validated, the timeline.

pub mod leftovers;
pub mod memory;
pub mod plan;
pub mod recorded;
pub mod trail;

use forensnap_acquire::{AcquireOptions, AdaptiveLimit, BlockSource, Limits, acquire_expecting};
use forensnap_core::EventDraft;
use forensnap_core::bag::PayloadFile;
use forensnap_core::custody::{console_output_item, instance_record_item};
use forensnap_core::details::{
    AcquiredData, AcquisitionCompleted, AcquisitionStarted, CollectedItem, CollectionCompleted,
    CollectionFailed, Details, EvidenceSealed, StoredObject, Subject,
};
use forensnap_core::keys::{CONSOLE_OUTPUT_PATH, INSTANCE_RECORD_PATH};
use forensnap_core::seal::{SealedItem, Signer};
use forensnap_core::{CaseLayout, Event, ItemLayout, Outcome};
use forensnap_evidence::item::{self, ItemKind, SealedBag};
use forensnap_evidence::{Acquired, ByteProgress};
use forensnap_ports::Trail;
use forensnap_preserve::{
    BeforeSnapshots, Custody, Ec2, InstanceRecord, Plan, PreserveError, Preserved, PreservedVolume,
    Progress, preserve_with, preserved_from_log,
};
use forensnap_store::{EvidenceAudit, EvidenceWrite, Handoff};
use futures::StreamExt;
pub use memory::{
    MemoryError, MemoryItem, MemoryJob, MemoryPlan, MemoryStep, MemorySummary, MemoryTarget,
    NoMemory, capture_memory,
};
pub use trail::{TrailItem, TrailPlan, TrailSummary, collect_trail};

/// How volumes are acquired.
#[derive(Debug, Clone)]
pub struct AcquirePlan {
    /// Engine tuning (window, layout, retries).
    pub options: AcquireOptions,
    /// Volumes acquired at once.
    pub concurrent_volumes: usize,
    /// Block reads in flight per snapshot: start and ceiling.
    pub initial_reads: usize,
    /// Ceiling of block reads in flight per snapshot.
    pub max_reads: usize,
    /// GetSnapshotBlock requests per second per snapshot (AWS: 1,000, not adjustable).
    pub snapshot_rps: f64,
    /// GetSnapshotBlock requests per second for the whole account (AWS default: 1,000).
    pub account_rps: f64,
    /// Name and version of the tool, for bag-info.txt.
    pub tool: String,
}

/// One evidence item of the case, as `collect --output json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EvidenceItem {
    /// Item id, unique in the case (`forensnap export --evidence` takes it).
    pub id: String,
    /// What it holds.
    pub kind: ItemKind,
    /// Bucket.
    pub bucket: String,
    /// Key prefix of the item's BagIt bag.
    pub prefix: String,
    /// Volume id (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// Device name on the instance (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The forensic-account snapshot read (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// SHA-256 of the whole raw image (volumes), of the memory image as S3 holds it (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// The host's own SHA-256 of the memory image it streamed (memory; equal to
    /// `image_sha256`, or the capture is not sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_sha256: Option<String>,
    /// Volume size in bytes (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_bytes: Option<u64>,
    /// Blocks stored, each matching AWS's checksum (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks_stored: Option<u64>,
    /// What a CloudTrail item holds: its window, events, flags or validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudtrail: Option<trail::TrailSummary>,
    /// What a memory item holds: both hashes, size, parts, LiME ranges, the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<memory::MemorySummary>,
    /// Payload files with their SHA-256 (as `manifest-sha256.txt` lists them).
    pub files: Vec<(String, String)>,
    /// SHA-256 of the bag's tag manifest, as sealed (the checkpoint records it).
    #[serde(skip)]
    pub tagmanifest_sha256: String,
}

/// What a collection produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Collected {
    /// The preservation step's result.
    #[serde(flatten)]
    pub preserved: Preserved,
    /// Every evidence item of the instance.
    pub evidence: Vec<EvidenceItem>,
}

/// Why a collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Preservation failed (nothing was acquired).
    #[error(transparent)]
    Preserve(#[from] PreserveError),
    /// One or more evidence items failed; the others are stored.
    #[error(
        "{failed} of {total} evidence items could not be completed; the others are stored. First: {first}. Next: fix the cause and run the same command again: stored parts are kept and not read again"
    )]
    Items {
        /// Items that failed.
        failed: usize,
        /// Items in all.
        total: usize,
        /// The first failure, naming the item, snapshot and step.
        first: String,
    },
}

/// Progress of a collection: preservation's, plus acquisition positions.
pub trait CollectProgress: Progress + ByteProgress {}
impl<T: Progress + ByteProgress> CollectProgress for T {}

struct Run<'a, S, K, B, G> {
    plan: &'a Plan,
    signer: &'a G,
    acquire: &'a AcquirePlan,
    custody: Custody<S>,
    sink: &'a K,
    source: &'a B,
    account: AdaptiveLimit,
    progress: &'a dyn CollectProgress,
    bucket: String,
    layout: CaseLayout,
}

/// Which part of a case's collection one run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// All of it: preservation, every item, `collection.completed` (the command line; the
    /// daemon's last step of a split case, which finds everything done and completes it).
    Whole,
    /// Preservation and the small items (instance record, console output), sealed; the
    /// volumes are left to [`Scope::Volume`] runs, on any machine.
    Prepare,
    /// One volume of a case whose preservation completed (read from the custody log: no
    /// member-account call), acquired and sealed.
    Volume(String),
}

/// Preserve the instance, then acquire and seal every evidence item (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn collect<
    M: Ec2,
    F: Ec2,
    S: EvidenceWrite + EvidenceAudit,
    K: Handoff,
    B: BlockSource,
    G: Signer,
>(
    plan: &Plan,
    acquire_plan: &AcquirePlan,
    member: &M,
    forensic: &F,
    custody: &Custody<S>,
    sink: &K,
    source: &B,
    signer: &G,
    progress: &dyn CollectProgress,
) -> Result<Collected, CollectError> {
    collect_scope(
        plan,
        acquire_plan,
        member,
        forensic,
        custody,
        sink,
        source,
        signer,
        progress,
        &Scope::Whole,
        None::<(&TrailPlan, &forensnap_ports::NoTrail)>,
        &NoMemory,
    )
    .await
}

/// [`collect`] of a part of the case ([`Scope`]): the daemon splits a case into its preparation
/// and one run per volume, each run by any daemon, and completes it with a [`Scope::Whole`] run.
#[allow(clippy::too_many_arguments)]
pub async fn collect_scope<
    M: Ec2,
    F: Ec2,
    S: EvidenceWrite + EvidenceAudit,
    K: Handoff,
    B: BlockSource,
    G: Signer,
    T: Trail,
    W: MemoryStep,
>(
    plan: &Plan,
    acquire_plan: &AcquirePlan,
    member: &M,
    forensic: &F,
    custody: &Custody<S>,
    sink: &K,
    source: &B,
    signer: &G,
    progress: &dyn CollectProgress,
    scope: &Scope,
    trail: Option<(&TrailPlan, &T)>,
    memory: &W,
) -> Result<Collected, CollectError> {
    let before = custody.head().await;
    // Memory first: captured once the instance is recorded, before its volumes are snapshotted.
    let memory_first = MemoryFirst {
        step: memory,
        sink,
        custody,
        signer,
        progress,
        outcome: std::sync::Mutex::new(None),
    };
    let preserved = match scope {
        Scope::Volume(_) => preserved_from_log(plan, custody).await,
        _ => preserve_with(plan, member, forensic, custody, progress, &memory_first).await,
    };
    let preserved = match preserved {
        Ok(preserved) => preserved,
        Err(err) => {
            // The failed run's events are sealed too: a later reader sees they were not cut.
            // A run that recorded nothing (a bucket unfit for evidence is refused before the
            // first event) writes nothing at all.
            if custody.head().await != before
                && let Err(e) = custody.checkpoint(signer, Vec::new()).await
            {
                tracing::warn!(error = %e, "the failed run's events could not be sealed");
            }
            return Err(err.into());
        }
    };
    let (bucket, layout) = (
        custody.store().bucket().to_string(),
        custody.layout().clone(),
    );
    let run = Run {
        plan,
        signer,
        acquire: acquire_plan,
        custody: custody.clone(),
        sink,
        source,
        account: AdaptiveLimit::new(
            acquire_plan.initial_reads,
            acquire_plan.max_reads.max(1) * acquire_plan.concurrent_volumes.max(1),
            acquire_plan.account_rps,
        ),
        progress,
        bucket,
        layout,
    };
    let mut results = Vec::new();
    if !matches!(scope, Scope::Volume(_)) {
        results.push(run.small_item(ItemKind::InstanceRecord).await);
        results.push(run.small_item(ItemKind::ConsoleOutput).await);
    }
    let captured = memory_first
        .outcome
        .lock()
        .map(|mut o| o.take())
        .unwrap_or_default();
    match captured {
        Some(Ok(item)) => results.push(Ok(run.memory_item(item))),
        Some(Err(e)) => results.push(Err(e.to_string())),
        None => {}
    }
    let chosen: Vec<&PreservedVolume> = match scope {
        Scope::Whole => preserved.volumes.iter().collect(),
        Scope::Prepare => Vec::new(),
        Scope::Volume(id) => {
            let found: Vec<&PreservedVolume> = preserved
                .volumes
                .iter()
                .filter(|v| &v.volume_id == id)
                .collect();
            if found.is_empty() {
                results.push(Err(format!(
                    "volume {id} is not one of the volumes case {} preserved of {} ({}); check the item id",
                    plan.case,
                    plan.instance_id,
                    preserved
                        .volumes
                        .iter()
                        .map(|v| v.volume_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            found
        }
    };
    let volumes = futures::stream::iter(chosen.into_iter().map(|v| run.volume(v)))
        .buffered(acquire_plan.concurrent_volumes.max(1))
        .collect::<Vec<Result<EvidenceItem, String>>>();
    // The account's record of the case is read beside the volumes (a different quota).
    let cloudtrail = async {
        match (trail, scope) {
            (Some((trail_plan, trail_source)), Scope::Whole | Scope::Prepare) => {
                match collect_trail(trail_plan, trail_source, custody, sink, signer).await {
                    Ok(items) => items.into_iter().map(|t| Ok(run.trail_item(t))).collect(),
                    Err(e) => vec![Err(format!(
                        "CloudTrail evidence of {}: {e}",
                        plan.instance_id
                    ))],
                }
            }
            _ => Vec::new(),
        }
    };
    let (volumes, cloudtrail) = futures::join!(volumes, cloudtrail);
    results.extend(cloudtrail);
    results.extend(volumes);
    let total = results.len();
    let (items, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let items: Vec<EvidenceItem> = items.into_iter().filter_map(Result::ok).collect();
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    if let Some(first) = errors.first() {
        let draft = run
            .draft(CollectionFailed {
                failed_items: Some(errors.len() as u64),
            })
            .failed(first.clone());
        let _ = run.record(draft).await;
        if let Err(e) = run.seal_chain(&items).await {
            tracing::warn!(error = %e, "the failed run's events could not be sealed");
        }
        return Err(CollectError::Items {
            failed: errors.len(),
            total,
            first: first.clone(),
        });
    }
    if *scope != Scope::Whole {
        // A part of the case: its items sealed in a checkpoint; the case completes later.
        run.seal_chain(&items)
            .await
            .map_err(CollectError::Preserve)?;
        let head = custody.head().await;
        let mut preserved = preserved;
        (preserved.custody_events, preserved.custody_head_sha256) = (head.seq, head.sha256);
        return Ok(Collected {
            preserved,
            evidence: items,
        });
    }
    let evidence = items
        .iter()
        .map(|i| CollectedItem {
            id: i.id.clone(),
            kind: i.kind,
            image_sha256: i.image_sha256.clone(),
        })
        .collect();
    let draft = run.draft(CollectionCompleted { evidence }).after(
        items
            .iter()
            .map(|i| format!("s3://{}/{}", i.bucket, i.prefix)),
    );
    run.record(draft).await.map_err(CollectError::Preserve)?;
    run.seal_chain(&items)
        .await
        .map_err(CollectError::Preserve)?;
    let head = custody.head().await;
    let mut preserved = preserved;
    (preserved.custody_events, preserved.custody_head_sha256) = (head.seq, head.sha256);
    Ok(Collected {
        preserved,
        evidence: items,
    })
}

/// Memory capture as preservation's step before the snapshots; its outcome kept for the run.
struct MemoryFirst<'a, W, K, S, G> {
    step: &'a W,
    sink: &'a K,
    custody: &'a Custody<S>,
    signer: &'a G,
    progress: &'a dyn CollectProgress,
    outcome: std::sync::Mutex<Option<Result<MemoryItem, MemoryError>>>,
}

impl<W: MemoryStep, K: Handoff, S: EvidenceWrite + EvidenceAudit, G: Signer> BeforeSnapshots
    for MemoryFirst<'_, W, K, S, G>
{
    async fn run(&self, instance: &InstanceRecord) {
        let target = MemoryTarget {
            instance_type: instance.instance_type.clone(),
            platform: instance.platform.clone(),
        };
        let outcome = self
            .step
            .capture(&target, self.sink, self.custody, self.signer)
            .await;
        match &outcome {
            Some(Ok(item)) => self.progress.step(&format!(
                "memory of {} captured: {} bytes, sha256 {} (host and S3 agree)",
                instance.instance_id, item.summary.bytes, item.summary.image_sha256
            )),
            Some(Err(e)) => self.progress.step(&format!(
                "memory of {} NOT captured ({}); the disks are collected next",
                instance.instance_id, e.step
            )),
            None => {}
        }
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = outcome;
        }
    }
}

/// Where an item's bag comes from, for the bag-info.txt fields every item shares.
pub(crate) struct BagSource<'a> {
    pub(crate) kind: ItemKind,
    pub(crate) id: &'a str,
    pub(crate) case: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) account: &'a str,
    pub(crate) region: &'a str,
    pub(crate) instance: Option<&'a str>,
    pub(crate) forensic_account: &'a str,
}

/// The bag-info.txt fields every item shares (`Evidence-Kind` first for all but volumes, whose
/// bags came first); the caller appends its kind's own.
pub(crate) fn bag_fields(source: &BagSource<'_>) -> Vec<(String, String)> {
    let date = time::OffsetDateTime::now_utc().date();
    let mut fields = Vec::new();
    if source.kind != ItemKind::Volume {
        fields.push(("Evidence-Kind", source.kind.as_str().to_string()));
    }
    fields.extend([
        ("External-Identifier", source.id.to_string()),
        ("Internal-Sender-Identifier", source.case.to_string()),
        (
            "Bagging-Date",
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
        ),
        ("Bag-Software-Agent", source.tool.to_string()),
        ("Case-Id", source.case.to_string()),
        ("Source-Account", source.account.to_string()),
        ("Source-Region", source.region.to_string()),
    ]);
    if let Some(instance) = source.instance {
        fields.push(("Instance-Id", instance.to_string()));
    }
    fields.push(("Forensic-Account", source.forensic_account.to_string()));
    fields
        .into_iter()
        .map(|(l, v)| (l.to_string(), v))
        .collect()
}

/// A small item's stored object as the custody event of `subject` that stored it recorded it
/// (this run's or an earlier run's): its SHA-256 and size go into the bag's manifest unread.
fn recorded_object(
    events: &[Event],
    subject: &Subject,
    kind: ItemKind,
    key: &str,
) -> Result<StoredObject, String> {
    let found = events
        .iter()
        .rev()
        .filter(|e| e.outcome == Outcome::Ok && e.subject().as_ref() == Some(subject))
        .find_map(|e| match (kind, e.details()) {
            (ItemKind::InstanceRecord, Ok(Some(Details::InstanceRecorded(d)))) => d.stored,
            (ItemKind::ConsoleOutput, Ok(Some(Details::ConsoleRecorded(d)))) => d.stored,
            _ => None,
        });
    match found {
        Some(stored) if stored.key == key => Ok(stored),
        Some(stored) => Err(format!(
            "{} of {}: the custody log records it stored at {}, not at {key} where the case layout puts it; investigate before sealing",
            kind.as_str(),
            subject.instance,
            stored.key
        )),
        None => Err(format!(
            "{} of {}: no custody event records it stored; run the collection again to store it",
            kind.as_str(),
            subject.instance
        )),
    }
}

impl<S: EvidenceWrite + EvidenceAudit, K: Handoff, B: BlockSource, G: Signer> Run<'_, S, K, B, G> {
    /// A signed checkpoint over the chain so far, naming the items sealed with their tag
    /// manifests' SHA-256 as sealing (or, for bags sealed by an earlier run, reading) found them.
    async fn seal_chain(&self, items: &[EvidenceItem]) -> Result<(), PreserveError> {
        let sealed = items
            .iter()
            .map(|item| SealedItem {
                id: item.id.clone(),
                prefix: item.prefix.clone(),
                tagmanifest_sha256: item.tagmanifest_sha256.clone(),
            })
            .collect();
        self.custody.checkpoint(self.signer, sealed).await?;
        Ok(())
    }

    fn subject(&self) -> Subject {
        Subject {
            instance: self.plan.instance_id.clone(),
            member_account: self.plan.member_account.clone(),
        }
    }

    /// An event about the instance, in the forensic account.
    fn draft(&self, details: impl Into<Details>) -> EventDraft {
        EventDraft::new(details)
            .at(&self.plan.forensic_account, &self.plan.member_region)
            .about(&self.subject())
    }

    async fn record(&self, draft: EventDraft) -> Result<(), PreserveError> {
        self.custody.record(draft).await?;
        Ok(())
    }

    /// bag-info.txt fields every item of the instance shares.
    fn common_fields(&self, id: &str, kind: ItemKind) -> Vec<(String, String)> {
        let plan = self.plan;
        bag_fields(&BagSource {
            kind,
            id,
            case: plan.case.as_str(),
            tool: &self.acquire.tool,
            account: &plan.member_account,
            region: &plan.member_region,
            instance: Some(&plan.instance_id),
            forensic_account: &plan.forensic_account,
        })
    }

    fn item(&self, id: &str, kind: ItemKind, bag: SealedBag) -> EvidenceItem {
        EvidenceItem {
            id: id.into(),
            kind,
            bucket: self.bucket.clone(),
            prefix: self.layout.item(id).prefix().to_string(),
            volume_id: None,
            device: None,
            snapshot_id: None,
            image_sha256: None,
            host_sha256: None,
            volume_bytes: None,
            blocks_stored: None,
            cloudtrail: None,
            memory: None,
            files: bag.files,
            tagmanifest_sha256: bag.tagmanifest_sha256,
        }
    }

    /// A memory item sealed by [`memory::capture_memory`].
    fn memory_item(&self, sealed: MemoryItem) -> EvidenceItem {
        EvidenceItem {
            image_sha256: Some(sealed.summary.image_sha256.clone()),
            host_sha256: Some(sealed.summary.host_sha256.clone()),
            memory: Some(sealed.summary),
            ..self.item(&sealed.id, ItemKind::Memory, sealed.bag)
        }
    }

    /// A CloudTrail item sealed by [`trail::collect_trail`].
    fn trail_item(&self, sealed: TrailItem) -> EvidenceItem {
        EvidenceItem {
            cloudtrail: Some(sealed.summary),
            ..self.item(&sealed.id, sealed.kind, sealed.bag)
        }
    }

    /// The instance record or console output (stored by preservation) sealed as a bag.
    async fn small_item(&self, kind: ItemKind) -> Result<EvidenceItem, String> {
        let (id, path) = match kind {
            ItemKind::InstanceRecord => (
                instance_record_item(&self.plan.instance_id),
                INSTANCE_RECORD_PATH,
            ),
            _ => (
                console_output_item(&self.plan.instance_id),
                CONSOLE_OUTPUT_PATH,
            ),
        };
        let prefix = self.layout.item(&id).prefix().to_string();
        let sealed = item::sealed(self.sink, &prefix)
            .await
            .map_err(|e| e.to_string())?;
        let bag = match sealed {
            Some(bag) => {
                self.sealed_event_if_missing(&id, kind, &prefix, &bag)
                    .await?;
                bag
            }
            None => {
                let key = self.layout.item(&id).file(path);
                let events = self.custody.events().await;
                let stored = recorded_object(&events, &self.subject(), kind, &key)?;
                let payload = PayloadFile {
                    path: path.to_string(),
                    sha256: stored.sha256,
                    size: stored.size,
                };
                let bag = item::seal_small(
                    self.sink,
                    &prefix,
                    &[payload],
                    &self.common_fields(&id, kind),
                    self.signer,
                    item::Guide {
                        id: &id,
                        case: self.plan.case.as_str(),
                        kind,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
                self.sealed_event(&id, kind, &prefix, &bag.files).await?;
                bag
            }
        };
        Ok(self.item(&id, kind, bag))
    }

    /// Whether the chain holds a successful event whose details `matches`. A step whose result
    /// is stored (a completion marker, a sealed bag) but whose event a killed run never wrote
    /// is recorded by the next run, once.
    async fn recorded(&self, matches: impl Fn(&Details) -> bool) -> bool {
        self.custody.events().await.iter().any(|event| {
            event.outcome == Outcome::Ok && matches!(event.details(), Ok(Some(ref d)) if matches(d))
        })
    }

    /// `evidence.sealed` of a bag an earlier run sealed, if that run was killed before writing it.
    async fn sealed_event_if_missing(
        &self,
        id: &str,
        kind: ItemKind,
        prefix: &str,
        bag: &SealedBag,
    ) -> Result<(), String> {
        let recorded = self
            .recorded(|d| matches!(d, Details::EvidenceSealed(s) if s.item == id))
            .await;
        if recorded {
            return Ok(());
        }
        tracing::info!(
            item = id,
            "sealed by an earlier run that left no event: recording it"
        );
        self.sealed_event(id, kind, prefix, &bag.files).await
    }

    async fn sealed_event(
        &self,
        id: &str,
        kind: ItemKind,
        prefix: &str,
        files: &[(String, String)],
    ) -> Result<(), String> {
        let draft = self
            .draft(EvidenceSealed {
                item: id.to_string(),
                kind,
                prefix: prefix.to_string(),
                payload_sha256: files.to_vec(),
            })
            .after([format!("s3://{}/{prefix}", self.bucket)]);
        self.record(draft).await.map_err(|e| e.to_string())
    }

    /// One volume: acquired (or found acquired) and sealed.
    async fn volume(&self, volume: &PreservedVolume) -> Result<EvidenceItem, String> {
        let id = volume.volume_id.clone();
        let prefix = self.layout.item(&id).prefix().to_string();
        let snapshot_id = volume.snapshot_id.as_str();
        let limit = AdaptiveLimit::new(
            self.acquire.initial_reads,
            self.acquire.max_reads,
            self.acquire.snapshot_rps,
        );
        let failed = |step: &str, e: &dyn std::fmt::Display| {
            format!(
                "volume {id} ({}) snapshot {snapshot_id}: {step}: {e}",
                volume.device
            )
        };
        let record =
            |draft: EventDraft| async move { self.record(draft).await.map_err(|e| e.to_string()) };
        let draft = self
            .draft(AcquisitionStarted {
                item: id.clone(),
                volume_id: id.clone(),
                layout: self.acquire.options.layout,
            })
            .before([snapshot_id.to_string()]);
        let sealed = item::sealed(self.sink, &prefix)
            .await
            .map_err(|e| failed("reading the bag", &e))?;
        let acquired = match sealed {
            Some(_) => None,
            None => {
                record(draft.clone()).await?;
                // EC2's size of the snapshot, when known: an EBS answer that contradicts it is
                // refused before anything is read.
                let expected = (volume.size_gib > 0).then_some(volume.size_gib);
                let got = acquire_expecting(
                    self.source,
                    self.sink,
                    Limits::shared(&limit, &self.account),
                    &self.acquire.options,
                    snapshot_id,
                    &prefix,
                    self.progress,
                    expected,
                )
                .await;
                match got {
                    Ok(got) => Some(got),
                    Err(e) => {
                        let message = failed("acquisition", &e);
                        record(
                            self.draft(AcquisitionCompleted {
                                item: id.clone(),
                                data: None,
                            })
                            .before([snapshot_id.to_string()])
                            .failed(message.clone()),
                        )
                        .await?;
                        return Err(message);
                    }
                }
            }
        };
        let acquired: Acquired = match acquired {
            Some(a) => a,
            None => {
                // Sealed by an earlier run: its completion marker says what it holds.
                let bytes = self
                    .sink
                    .get(&ItemLayout::at(&prefix).completion_marker())
                    .await
                    .map_err(|e| failed("reading the completion marker", &e))?
                    .ok_or_else(|| {
                        failed(
                            "reading the completion marker",
                            &"missing from a sealed bag",
                        )
                    })?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| failed("reading the completion marker", &e))?
            }
        };
        let bag = match sealed {
            Some(bag) => {
                self.sealed_event_if_missing(&id, ItemKind::Volume, &prefix, &bag)
                    .await?;
                bag
            }
            None => {
                // Recorded unless the chain has it: a run killed between the completion marker
                // and this event finds the item acquired, and writes the event now.
                let recorded = self
                    .recorded(|d| {
                        matches!(d, Details::AcquisitionCompleted(a)
                            if a.item == id && a.data.is_some())
                    })
                    .await;
                if !recorded {
                    record(
                        self.draft(AcquisitionCompleted {
                            item: id.clone(),
                            data: Some(AcquiredData {
                                volume_id: id.clone(),
                                key: acquired.data_key.clone(),
                                version_id: acquired.version_id.clone(),
                                image_sha256: acquired.image_sha256.clone(),
                                data_sha256: acquired.data_sha256.clone(),
                                composite_sha256: acquired.composite_sha256.clone(),
                                data_crc64nvme: acquired.data_crc64nvme.clone(),
                                block_map_sha256: acquired.block_map_sha256.clone(),
                                blocks_stored: acquired.blocks_stored,
                                aws_checksums_matched: acquired.aws_checksums_matched,
                                answers_discarded: acquired.discarded,
                                resumed_parts: acquired.resumed_parts,
                            }),
                        })
                        .before([snapshot_id.to_string()])
                        .after([format!("s3://{}/{}", self.bucket, acquired.data_key)]),
                    )
                    .await?;
                }
                let mut fields = self.common_fields(&id, ItemKind::Volume);
                fields.extend([
                    ("Volume-Id".to_string(), id.clone()),
                    ("Device".to_string(), volume.device.clone()),
                    (
                        "Member-Snapshot-Id".to_string(),
                        volume.member_snapshot_id.clone(),
                    ),
                    ("Snapshot-KMS-Key".to_string(), volume.kms_key_id.clone()),
                ]);
                let bag = item::seal_volume(
                    self.sink,
                    &prefix,
                    &acquired,
                    &fields,
                    self.signer,
                    item::Guide {
                        id: &id,
                        case: self.plan.case.as_str(),
                        kind: ItemKind::Volume,
                    },
                )
                .await
                .map_err(|e| failed("sealing the bag", &e))?;
                self.sealed_event(&id, ItemKind::Volume, &prefix, &bag.files)
                    .await?;
                bag
            }
        };
        Ok(EvidenceItem {
            volume_id: Some(id.clone()),
            device: Some(volume.device.clone()),
            snapshot_id: Some(snapshot_id.to_string()),
            image_sha256: Some(acquired.image_sha256.clone()),
            volume_bytes: Some(acquired.volume_bytes),
            blocks_stored: Some(acquired.blocks_stored),
            ..self.item(&id, ItemKind::Volume, bag)
        })
    }
}

#[cfg(test)]
mod tests;
