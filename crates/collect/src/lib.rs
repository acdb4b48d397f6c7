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

pub mod plan;
pub mod recorded;

use forensnap_acquire::{AcquireOptions, AdaptiveLimit, BlockSource, Limits, acquire};
use forensnap_core::EventDraft;
use forensnap_core::custody::{console_output_item, instance_record_item};
use forensnap_core::keys::{CONSOLE_OUTPUT_PATH, INSTANCE_RECORD_PATH};
use forensnap_core::seal::{SealedItem, Signer};
use forensnap_core::{Action, CaseLayout, ItemLayout};
use forensnap_evidence::item::{self, ItemKind, SealedBag};
use forensnap_evidence::{Acquired, ByteProgress};
use forensnap_preserve::{
    Custody, Ec2, Plan, PreserveError, Preserved, PreservedVolume, Progress, preserve,
};
use forensnap_store::{EvidenceAudit, EvidenceWrite};
use futures::StreamExt;

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
    /// SHA-256 of the whole raw image (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// Volume size in bytes (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_bytes: Option<u64>,
    /// Blocks stored, each matching AWS's checksum (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks_stored: Option<u64>,
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

/// Preserve the instance, then acquire and seal every evidence item (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn collect<
    M: Ec2,
    F: Ec2,
    S: EvidenceWrite + EvidenceAudit,
    K: EvidenceWrite,
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
    let preserved = match preserve(plan, member, forensic, custody, progress).await {
        Ok(preserved) => preserved,
        Err(err) => {
            // The failed run's events are sealed too: a later reader sees they were not cut.
            if let Err(e) = custody.checkpoint(signer, Vec::new()).await {
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
    let mut results = vec![run.small_item(ItemKind::InstanceRecord).await];
    results.push(run.small_item(ItemKind::ConsoleOutput).await);
    let volumes: Vec<Result<EvidenceItem, String>> =
        futures::stream::iter(preserved.volumes.iter().map(|v| run.volume(v)))
            .buffered(acquire_plan.concurrent_volumes.max(1))
            .collect()
            .await;
    results.extend(volumes);
    let total = results.len();
    let (items, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let items: Vec<EvidenceItem> = items.into_iter().filter_map(Result::ok).collect();
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    if let Some(first) = errors.first() {
        let draft = run
            .draft(Action::CollectionFailed)
            .failed(first.clone())
            .detail("failed_items", errors.len());
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
    let draft = run
        .draft(Action::CollectionCompleted)
        .after(items.iter().map(|i| format!("s3://{}/{}", i.bucket, i.prefix)))
        .detail(
            "evidence",
            items
                .iter()
                .map(|i| serde_json::json!({"id": i.id, "kind": i.kind, "image_sha256": i.image_sha256}))
                .collect::<Vec<_>>(),
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

impl<S: EvidenceWrite + EvidenceAudit, K: EvidenceWrite, B: BlockSource, G: Signer>
    Run<'_, S, K, B, G>
{
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

    fn draft(&self, action: Action) -> EventDraft {
        EventDraft::new(action)
            .at(&self.plan.forensic_account, &self.plan.member_region)
            .detail("instance", &self.plan.instance_id)
            .detail("member_account", &self.plan.member_account)
    }

    async fn record(&self, draft: EventDraft) -> Result<(), PreserveError> {
        self.custody.record(draft).await?;
        Ok(())
    }

    /// bag-info.txt fields every item of the instance shares.
    fn common_fields(&self, id: &str, kind: ItemKind) -> Vec<(String, String)> {
        let plan = self.plan;
        let date = time::OffsetDateTime::now_utc().date();
        let mut fields = vec![
            ("External-Identifier", id.to_string()),
            ("Internal-Sender-Identifier", plan.case.to_string()),
            (
                "Bagging-Date",
                format!(
                    "{:04}-{:02}-{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day()
                ),
            ),
            ("Bag-Software-Agent", self.acquire.tool.clone()),
            ("Case-Id", plan.case.to_string()),
            ("Source-Account", plan.member_account.clone()),
            ("Source-Region", plan.member_region.clone()),
            ("Instance-Id", plan.instance_id.clone()),
            ("Forensic-Account", plan.forensic_account.clone()),
        ];
        if kind != ItemKind::Volume {
            fields.insert(0, ("Evidence-Kind", kind.as_str().to_string()));
        }
        fields
            .into_iter()
            .map(|(l, v)| (l.to_string(), v))
            .collect()
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
            volume_bytes: None,
            blocks_stored: None,
            files: bag.files,
            tagmanifest_sha256: bag.tagmanifest_sha256,
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
            Some(bag) => bag,
            None => {
                let bag = item::seal_stored(
                    self.sink,
                    &prefix,
                    &[path],
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

    async fn sealed_event(
        &self,
        id: &str,
        kind: ItemKind,
        prefix: &str,
        files: &[(String, String)],
    ) -> Result<(), String> {
        let draft = self
            .draft(Action::EvidenceSealed)
            .after([format!("s3://{}/{prefix}", self.bucket)])
            .detail("item", id)
            .detail("kind", kind)
            .detail("prefix", prefix)
            .detail("payload_sha256", files);
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
            .draft(Action::AcquisitionStarted)
            .before([snapshot_id.to_string()])
            .detail("item", &id)
            .detail("volume_id", &id)
            .detail("layout", self.acquire.options.layout.as_str());
        let sealed = item::sealed(self.sink, &prefix)
            .await
            .map_err(|e| failed("reading the bag", &e))?;
        let acquired = match sealed {
            Some(_) => None,
            None => {
                record(draft.clone()).await?;
                let got = acquire(
                    self.source,
                    self.sink,
                    Limits::shared(&limit, &self.account),
                    &self.acquire.options,
                    snapshot_id,
                    &prefix,
                    self.progress,
                )
                .await;
                match got {
                    Ok(got) => Some(got),
                    Err(e) => {
                        let message = failed("acquisition", &e);
                        record(
                            self.draft(Action::AcquisitionCompleted)
                                .before([snapshot_id.to_string()])
                                .detail("item", &id)
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
            Some(bag) => bag,
            None => {
                if !acquired.already_complete {
                    record(
                        self.draft(Action::AcquisitionCompleted)
                            .before([snapshot_id.to_string()])
                            .after([format!("s3://{}/{}", self.bucket, acquired.data_key)])
                            .detail("item", &id)
                            .detail("volume_id", &id)
                            .detail("key", &acquired.data_key)
                            .detail("version_id", &acquired.version_id)
                            .detail("image_sha256", &acquired.image_sha256)
                            .detail("data_sha256", &acquired.data_sha256)
                            .detail("composite_sha256", &acquired.composite_sha256)
                            .detail("block_map_sha256", &acquired.block_map_sha256)
                            .detail("blocks_stored", acquired.blocks_stored)
                            .detail("aws_checksums_matched", acquired.aws_checksums_matched)
                            .detail("answers_discarded", acquired.discarded)
                            .detail("resumed_parts", acquired.resumed_parts),
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
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use forensnap_acquire::memory::MemorySource;
    use forensnap_acquire::{BlockPage, FetchPolicy, FetchedBlock, SourceError};
    use forensnap_core::layout::BLOCK_SIZE;
    use forensnap_core::{Event, Outcome};
    use forensnap_evidence::NoProgress;
    use forensnap_preserve::SnapshotInfo;
    use forensnap_preserve::fake::{Cloud, FORENSIC_KEY, MEMBER, Shared, accounts, plan};
    use forensnap_store::MemoryStore;
    use sha2::{Digest, Sha256};

    use super::*;

    /// One in-memory bucket serving both seams, as the real bucket does.
    type Bucket = MemoryStore;

    /// Every snapshot holds the same pattern; when armed, the first snapshot read fails for good.
    struct Snapshots {
        pattern: MemorySource,
        armed: AtomicBool,
        failing: Mutex<Option<String>>,
    }

    impl BlockSource for Snapshots {
        async fn list(
            &self,
            snapshot_id: &str,
            start: u64,
            token: Option<&str>,
            max: u32,
        ) -> Result<BlockPage, SourceError> {
            self.pattern.list(snapshot_id, start, token, max).await
        }
        async fn get(
            &self,
            snapshot_id: &str,
            index: u64,
            token: &str,
        ) -> Result<FetchedBlock, SourceError> {
            {
                let mut failing = self.failing.lock().expect("lock");
                if self.armed.swap(false, Ordering::SeqCst) {
                    *failing = Some(snapshot_id.to_string());
                }
                if failing.as_deref() == Some(snapshot_id) {
                    return Err(SourceError::Fatal(
                        "AccessDeniedException: kms:Decrypt (fake)".into(),
                    ));
                }
            }
            self.pattern.get(snapshot_id, index, token).await
        }
    }

    fn cloud() -> Shared {
        let mut cloud = Cloud::default();
        let volumes = ["a", "f", "g"].map(|d| (format!("/dev/xvd{d}"), (format!("vol-{d}"), None)));
        cloud
            .instances
            .insert("i-1".into(), BTreeMap::from(volumes));
        cloud
            .key_users
            .insert(FORENSIC_KEY.into(), [MEMBER.to_string()].into());
        Shared::new(std::sync::Mutex::new(cloud))
    }

    fn acquire_plan() -> AcquirePlan {
        AcquirePlan {
            options: AcquireOptions {
                window: 4,
                channel_blocks: 2,
                list_page: 100,
                policy: FetchPolicy {
                    base_delay: Duration::from_millis(1),
                    max_delay: Duration::from_millis(2),
                    ..FetchPolicy::default()
                },
                layout: forensnap_core::layout::Layout::Blocks,
            },
            concurrent_volumes: 2,
            initial_reads: 2,
            max_reads: 4,
            snapshot_rps: 100_000.0,
            account_rps: 100_000.0,
            tool: "forensnap test".into(),
        }
    }

    struct Quiet;
    impl Progress for Quiet {
        fn snapshot(&self, _: &str, _: &str, _: &SnapshotInfo) {}
        fn step(&self, _: &str) {}
    }
    impl ByteProgress for Quiet {
        fn position(&self, s: &str, p: u64, v: u64) {
            NoProgress.position(s, p, v)
        }
    }

    async fn run(
        cloud: &Shared,
        bucket: &Bucket,
        source: &Snapshots,
    ) -> (Result<Collected, CollectError>, Vec<Event>) {
        let (member, forensic, actor) = accounts(cloud);
        let plan = plan();
        let custody = Custody::open(bucket.clone(), "", &plan.case, actor, None)
            .await
            .expect("open log");
        let result = collect(
            &plan,
            &acquire_plan(),
            &member,
            &forensic,
            &custody,
            bucket,
            source,
            &signer(),
            &Quiet,
        )
        .await;
        (result, custody.events().await)
    }

    fn signer() -> forensnap_core::seal::MemorySigner {
        forensnap_core::seal::MemorySigner::from_seed(
            3,
            "arn:aws:kms:us-east-1:123456789012:key/sign",
        )
    }

    /// What `verify_checkpoints` finds wrong with the case's stored events and checkpoints.
    fn sealed_findings(
        bucket: &Bucket,
        signer: &forensnap_core::seal::MemorySigner,
    ) -> Vec<String> {
        let case = forensnap_core::CaseId::parse("IR-1").expect("case");
        let events: Vec<(String, Vec<u8>)> = bucket
            .keys("cases/IR-1/custody/events/")
            .into_iter()
            .map(|k| (k.clone(), bucket.object(&k).expect("event")))
            .collect();
        let checkpoints: Vec<forensnap_core::seal::CheckpointObject> = bucket
            .keys("cases/IR-1/custody/checkpoints/")
            .into_iter()
            .filter(|k| k.ends_with(".json"))
            .map(|k| {
                let sig = bucket.object(&format!("{k}.sig"));
                (k.clone(), bucket.object(&k).expect("checkpoint"), sig)
            })
            .collect();
        assert!(!checkpoints.is_empty(), "no checkpoint written");
        forensnap_core::seal::verify_checkpoints(
            &case,
            &events,
            &checkpoints,
            signer.public_key_der(),
        )
        .into_iter()
        .map(|f| f.to_string())
        .collect()
    }

    fn count(events: &[Event], action: Action) -> usize {
        events.iter().filter(|e| e.kind() == Some(action)).count()
    }

    fn source() -> Snapshots {
        Snapshots {
            pattern: MemorySource::pattern(BLOCK_SIZE, 64, &[0, 1, 17, 63]),
            armed: AtomicBool::new(false),
            failing: Mutex::new(None),
        }
    }

    #[tokio::test]
    async fn every_volume_and_record_becomes_a_sealed_item_and_a_rerun_reads_nothing() {
        let (cloud, bucket, source) = (cloud(), Bucket::default(), source());
        let (result, events) = run(&cloud, &bucket, &source).await;
        let collected = result.expect("collected");
        let image = hex::encode(Sha256::digest(source.pattern.raw_image()));
        let volumes: Vec<&EvidenceItem> = collected
            .evidence
            .iter()
            .filter(|i| i.kind == ItemKind::Volume)
            .collect();
        assert_eq!((collected.evidence.len(), volumes.len()), (5, 3));
        for item in &collected.evidence {
            assert!(
                bucket
                    .object(&format!("{}tagmanifest-sha256.txt", item.prefix))
                    .is_some(),
                "{} sealed",
                item.id
            );
        }
        for item in &volumes {
            assert_eq!(item.image_sha256.as_deref(), Some(image.as_str()));
            assert_eq!(item.blocks_stored, Some(4));
            let preserved = collected
                .preserved
                .volumes
                .iter()
                .find(|v| Some(&v.volume_id) == item.volume_id.as_ref())
                .expect("preserved");
            assert_eq!(item.snapshot_id.as_ref(), Some(&preserved.snapshot_id));
        }
        assert_eq!(count(&events, Action::AcquisitionCompleted), 3);
        assert_eq!(count(&events, Action::EvidenceSealed), 5);
        assert_eq!(
            events.last().map(|e| e.action.as_str()),
            Some(Action::CollectionCompleted.as_str())
        );
        assert_eq!(collected.preserved.custody_events, events.len() as u64);
        let signer = signer();
        assert_eq!(
            sealed_findings(&bucket, &signer),
            Vec::<String>::new(),
            "the chain is sealed by a valid checkpoint"
        );
        for item in &collected.evidence {
            let manifest = bucket
                .object(&format!("{}tagmanifest-sha256.txt", item.prefix))
                .expect("tm");
            let signature = bucket
                .object(&format!("{}tagmanifest-sha256.txt.sig", item.prefix))
                .expect("sig");
            forensnap_core::seal::verify_signature(signer.public_key_der(), &manifest, &signature)
                .expect("the tag manifest's signature verifies");
        }

        let gets = source.pattern.gets.load(Ordering::SeqCst);
        let (again, events) = run(&cloud, &bucket, &source).await;
        let again = again.expect("second run");
        assert_eq!(
            source.pattern.gets.load(Ordering::SeqCst),
            gets,
            "nothing read again"
        );
        assert_eq!(count(&events, Action::AcquisitionCompleted), 3);
        assert_eq!(count(&events, Action::EvidenceSealed), 5);
        assert_eq!(again.evidence, collected.evidence);
    }

    #[tokio::test]
    async fn a_failing_volume_does_not_stop_the_others_and_a_rerun_finishes_it() {
        let (cloud, bucket, source) = (cloud(), Bucket::default(), source());
        source.armed.store(true, Ordering::SeqCst);
        let (result, events) = run(&cloud, &bucket, &source).await;
        let err = result.expect_err("one volume fails");
        let failing = source
            .failing
            .lock()
            .expect("lock")
            .clone()
            .expect("a snapshot failed");
        let text = err.to_string();
        assert!(
            text.contains("1 of 5") && text.contains(&failing) && text.contains("block 0"),
            "{text}"
        );
        let last = events.last().expect("events");
        assert_eq!(
            (last.action.as_str(), last.outcome),
            (Action::CollectionFailed.as_str(), Outcome::Failed)
        );
        assert_eq!(
            count(&events, Action::EvidenceSealed),
            4,
            "the other items are sealed"
        );

        *source.failing.lock().expect("lock") = None;
        let (result, events) = run(&cloud, &bucket, &source).await;
        let collected = result.expect("resumed");
        let image = hex::encode(Sha256::digest(source.pattern.raw_image()));
        assert!(
            collected
                .evidence
                .iter()
                .filter(|i| i.kind == ItemKind::Volume)
                .all(|i| i.image_sha256.as_deref() == Some(image.as_str()))
        );
        assert_eq!(count(&events, Action::EvidenceSealed), 5);
        assert_eq!(
            events.last().map(|e| e.action.as_str()),
            Some(Action::CollectionCompleted.as_str())
        );
        assert_eq!(
            sealed_findings(&bucket, &signer()),
            Vec::<String>::new(),
            "both runs sealed, the failed one included"
        );
    }
}
