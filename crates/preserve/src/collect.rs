//! The preservation run for one instance.
//!
//! Order of acts, each recorded as a custody event before the next begins:
//! bucket checked -> role assumed -> instance and console recorded -> CreateSnapshots -> per
//! volume (at most `max_concurrent_copies` at once): wait, re-encrypting member copy when the
//! snapshot cannot be shared as it is, share with the forensic account only, forensic copy under
//! the forensic key, wait, unshare, delete the intermediate copy. The instance is never stopped,
//! detached or modified, and the member-account snapshots are kept as evidence.
//!
//! A failure stops the failing volume only; its share is removed at once, the others finish,
//! and the run ends with `collection.failed`. Running again resumes from the custody events.

use std::collections::BTreeMap;

use forensnap_core::CaseLayout;
use forensnap_core::custody::{console_output_item, instance_record_item};
use forensnap_core::keys::{CONSOLE_OUTPUT_PATH, INSTANCE_RECORD_PATH};
use forensnap_core::{Action, CaseId, ChainHead, EventDraft};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::custody::CustodyLog;
use crate::error::PreserveError;
use forensnap_store::{ErrorKind, EvidenceAudit, EvidenceWrite, Stored};

use crate::ports::{Called, Ec2, SnapState, SnapshotInfo};
use crate::state::{CaseState, VolumeState, stage};
use crate::wait::{Backoff, WaitError, until_settled};

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

struct Run<'a, M, F, S> {
    plan: &'a Plan,
    member: &'a M,
    forensic: &'a F,
    log: Mutex<&'a mut CustodyLog<S>>,
    progress: &'a dyn Progress,
}

/// Preserve one instance's volumes in the forensic account (see the module docs).
pub async fn preserve<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    forensic: &F,
    log: &mut CustodyLog<S>,
    progress: &dyn Progress,
) -> Result<Preserved, PreserveError> {
    check_bucket(log.store()).await?;
    let run = Run {
        plan,
        member,
        forensic,
        log: Mutex::new(log),
        progress,
    };
    let result = run.preserve().await;
    if let Err(err) = &result {
        let draft = run.draft(Action::CollectionFailed).failed(err.to_string());
        let _ = run.record(draft).await;
    }
    result
}

async fn check_bucket<S: EvidenceWrite + EvidenceAudit>(store: &S) -> Result<(), PreserveError> {
    let bucket = store.bucket().to_string();
    let lock = store.bucket_lock().await.map_err(|e| PreserveError::Bucket {
        bucket: bucket.clone(),
        problem: e.to_string(),
        next: "check that the bucket exists in the forensic account and that the forensic credentials may call s3:GetBucketObjectLockConfiguration and s3:GetBucketVersioning".into(),
    })?;
    let lock = lock.value;
    let problem = if !lock.enabled {
        Some("Object Lock is not enabled".to_string())
    } else if lock.default_mode.as_deref() != Some("COMPLIANCE") {
        Some(format!(
            "its default retention mode is {} instead of COMPLIANCE",
            lock.default_mode.as_deref().unwrap_or("unset")
        ))
    } else if lock.versioning.as_deref() != Some("Enabled") {
        Some("versioning is not enabled".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PreserveError::Bucket {
            bucket,
            problem,
            next: "use a bucket created with Object Lock and a COMPLIANCE default retention (forensic-vpc/forensic-account.yaml creates one); Object Lock cannot be added to this bucket safely after the fact".into(),
        }),
        None => Ok(()),
    }
}

fn request_ids<T>(called: &Called<T>) -> Vec<String> {
    called.request_id.iter().cloned().collect()
}

impl<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit> Run<'_, M, F, S> {
    fn draft(&self, action: Action) -> EventDraft {
        EventDraft::new(action)
            .at(&self.plan.member_account, &self.plan.member_region)
            .detail("instance", &self.plan.instance_id)
            .detail("member_account", &self.plan.member_account)
    }

    /// An event about one volume's snapshot at `stage`, in `ec2`'s account and region.
    fn volume_draft<E: Ec2>(
        &self,
        action: Action,
        ec2: &E,
        volume_id: &str,
        stage: &str,
    ) -> EventDraft {
        self.draft(action)
            .at(ec2.account(), ec2.region())
            .detail("volume_id", volume_id)
            .detail("stage", stage)
    }

    async fn record(&self, draft: EventDraft) -> Result<(), PreserveError> {
        self.log.lock().await.record(draft).await.map(|_| ())
    }

    /// Record a failed step in the member account and build its error.
    async fn fail(
        &self,
        draft: EventDraft,
        step: &'static str,
        resource: &str,
        err: impl ToString,
        next: impl ToString,
    ) -> PreserveError {
        self.fail_in(&self.plan.member_account, draft, step, resource, err, next)
            .await
    }

    /// Record a failed step in `account` and build its error.
    async fn fail_in(
        &self,
        account: &str,
        draft: EventDraft,
        step: &'static str,
        resource: &str,
        err: impl ToString,
        next: impl ToString,
    ) -> PreserveError {
        let message = err.to_string();
        let _ = self.record(draft.failed(message.clone())).await;
        PreserveError::step(step, account, resource, message, next)
    }

    async fn preserve(&self) -> Result<Preserved, PreserveError> {
        let plan = self.plan;
        let (bucket, layout) = {
            let log = self.log.lock().await;
            (log.store().bucket().to_string(), log.layout().clone())
        };
        let state = {
            let log = self.log.lock().await;
            CaseState::from_events(log.events(), &plan.member_account, &plan.instance_id)
        };
        self.record(
            self.draft(Action::CollectionStarted)
                .detail("tool", &plan.tool)
                .detail("run", state.runs + 1)
                .detail("resumed", state.runs > 0),
        )
        .await?;
        self.record(
            self.draft(Action::BucketChecked)
                .detail("bucket", &bucket)
                .detail("object_lock", "COMPLIANCE"),
        )
        .await?;
        self.progress.step(&format!(
            "evidence bucket {bucket}: Object Lock COMPLIANCE, versioning on"
        ));

        let draft = self
            .draft(Action::RoleAssumed)
            .before([plan.role_arn.clone()])
            .detail("role_arn", &plan.role_arn)
            .detail("session_name", &plan.session_name)
            .detail("source_identity", &plan.source_identity);
        let whoami = match self.member.whoami().await {
            Ok(whoami) => whoami,
            Err(e) => {
                let next = format!(
                    "check that role {} exists in account {}, that its trust policy admits the forensic account with this ExternalId (config [[members]] external_id) and allows sts:SetSourceIdentity",
                    plan.role_arn, plan.member_account
                );
                return Err(self
                    .fail(draft, "assume the collector role", &plan.role_arn, e, next)
                    .await);
            }
        };
        self.record(
            draft
                .after([whoami.value.clone()])
                .request_ids(request_ids(&whoami)),
        )
        .await?;
        self.progress
            .step(&format!("assumed {} as {}", plan.role_arn, whoami.value));

        let (record, console) = self.record_instance(&state, &bucket, &layout).await?;
        let instance_volumes = record;
        let originals = self.snapshot_volumes(&state, &instance_volumes).await?;

        let volumes: Vec<(String, VolumeState)> = originals.into_iter().collect();
        let results: Vec<Result<PreservedVolume, PreserveError>> = futures::stream::iter(
            volumes
                .into_iter()
                .map(|(volume_id, volume)| async move { self.volume(&volume_id, volume).await }),
        )
        .buffer_unordered(plan.max_concurrent_copies.max(1))
        .collect()
        .await;
        let mut preserved = Vec::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(volume) => preserved.push(volume),
                Err(err) => errors.push(err),
            }
        }
        if let Some(first) = errors.into_iter().next() {
            return Err(first);
        }
        preserved.sort_by(|a, b| a.device.cmp(&b.device));
        let summary: Vec<_> = preserved.iter().map(|v| serde_json::json!({"device": v.device, "volume_id": v.volume_id, "member_snapshot_id": v.member_snapshot_id, "snapshot_id": v.snapshot_id, "kms_key_id": v.kms_key_id})).collect();
        self.record(
            self.draft(Action::PreservationCompleted)
                .after(preserved.iter().map(|v| v.snapshot_id.clone()))
                .detail("volumes", summary),
        )
        .await?;
        let log = self.log.lock().await;
        let head: &ChainHead = log.head();
        Ok(Preserved {
            case: plan.case.to_string(),
            account: plan.member_account.clone(),
            region: plan.member_region.clone(),
            instance_id: plan.instance_id.clone(),
            instance_record: console.0,
            console_output: console.1,
            volumes: preserved,
            custody_events: head.seq,
            custody_head_sha256: head.sha256.clone(),
        })
    }

    /// DescribeInstances and console output, stored as evidence (once per case and instance).
    async fn record_instance(
        &self,
        state: &CaseState,
        bucket: &str,
        layout: &CaseLayout,
    ) -> Result<
        (
            BTreeMap<String, String>,
            (Option<StoredRef>, Option<StoredRef>),
        ),
        PreserveError,
    > {
        let plan = self.plan;
        let draft = self
            .draft(Action::InstanceRecorded)
            .before([plan.instance_id.clone()]);
        let described = match self.member.describe_instance(&plan.instance_id).await {
            Ok(d) => d,
            Err(e) => return Err(self.fail(draft, "describe the instance", &plan.instance_id, e, "check the instance id and --region, and the role's ec2:DescribeInstances right").await),
        };
        let Some(record) = described.value.clone() else {
            let next = format!(
                "check the instance id and the region (--region {}); the instance may have been terminated",
                plan.member_region
            );
            return Err(self
                .fail(
                    draft,
                    "describe the instance",
                    &plan.instance_id,
                    format!(
                        "instance {} does not exist in account {} region {}",
                        plan.instance_id, plan.member_account, plan.member_region
                    ),
                    next,
                )
                .await);
        };
        if record.volumes.is_empty() {
            return Err(self.fail(draft, "describe the instance", &plan.instance_id, "the instance has no attached EBS volume", "nothing to snapshot; collect memory or instance-store evidence with other tools").await);
        }
        let mut stored = (None, None);
        if !state.instance_recorded {
            let draft = draft
                .request_ids(request_ids(&described))
                .detail("volumes", &record.volumes)
                .detail("availability_zone", &record.availability_zone);
            let key = layout
                .item(&instance_record_item(&plan.instance_id))
                .file(INSTANCE_RECORD_PATH);
            let put = self
                .store_evidence(draft, bucket, &key, record.json.clone(), "application/json")
                .await?;
            stored.0 = Some(put.into());
        }
        if !state.console_recorded {
            let draft = self
                .draft(Action::ConsoleRecorded)
                .before([plan.instance_id.clone()]);
            let console = match self.member.console_output(&plan.instance_id).await {
                Ok(c) => c,
                Err(e) => {
                    return Err(self
                        .fail(
                            draft,
                            "read the console output",
                            &plan.instance_id,
                            e,
                            "grant the role ec2:GetConsoleOutput, or run again",
                        )
                        .await);
                }
            };
            let key = layout
                .item(&console_output_item(&plan.instance_id))
                .file(CONSOLE_OUTPUT_PATH);
            let draft = draft.request_ids(request_ids(&console));
            let put = self
                .store_evidence(
                    draft,
                    bucket,
                    &key,
                    console.value,
                    "text/plain; charset=utf-8",
                )
                .await?;
            stored.1 = Some(put.into());
        }
        self.progress.step(&format!(
            "recorded instance {} ({} volumes)",
            plan.instance_id,
            record.volumes.len()
        ));
        Ok((record.volumes, stored))
    }

    /// Store an evidence object under Object Lock and record the event with where it went and
    /// its SHA-256 (`draft` carries the step's own details).
    async fn store_evidence(
        &self,
        draft: EventDraft,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Stored, PreserveError> {
        let put = self.put(key, bytes, content_type, draft.clone()).await?;
        self.record(
            draft
                .after([format!("s3://{bucket}/{key}")])
                .detail("key", key)
                .detail("version_id", &put.version_id)
                .detail("sha256", &put.sha256)
                .detail("size", put.size),
        )
        .await?;
        Ok(put)
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        draft: EventDraft,
    ) -> Result<Stored, PreserveError> {
        let result = {
            let log = self.log.lock().await;
            log.store().put_new(key, bytes, content_type).await
        };
        match result {
            Ok(stored) => Ok(stored.value),
            Err(e) => Err(self.fail(draft, "store evidence", key, e, "check the forensic credentials' s3:PutObject and s3:PutObjectRetention rights, then run again").await),
        }
    }

    /// CreateSnapshots once per case and instance (adopting a lost answer on resume).
    async fn snapshot_volumes(
        &self,
        state: &CaseState,
        attached: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, VolumeState>, PreserveError> {
        let plan = self.plan;
        if state.snapshots_created {
            return Ok(state.volumes.clone());
        }
        let draft = self
            .draft(Action::SnapshotsCreated)
            .before(std::iter::once(plan.instance_id.clone()).chain(attached.values().cloned()));
        let mut adopted = Vec::new();
        if let Some(description) = &state.snapshots_requested {
            let found = self
                .member
                .find_snapshots(description)
                .await
                .unwrap_or_default();
            let wanted: Vec<&String> = attached.values().collect();
            adopted = found
                .into_iter()
                .filter(|s| wanted.contains(&&s.volume_id))
                .collect();
            if adopted.len() != attached.len() {
                adopted.clear();
            }
        }
        let was_adopted = !adopted.is_empty();
        let (snapshots, request_id) = if adopted.is_empty() {
            self.record(
                self.draft(Action::SnapshotsRequested)
                    .before([plan.instance_id.clone()])
                    .detail("description", &plan.description)
                    .detail("tags", &plan.member_tags),
            )
            .await?;
            match self.member.create_snapshots(&plan.instance_id, &plan.description, &plan.member_tags).await {
                Ok(made) => (made.value, made.request_id),
                Err(e) => return Err(self.fail(draft, "snapshot the volumes", &plan.instance_id, e, "check the role's ec2:CreateSnapshots right and the account's snapshot quota, then run again").await),
            }
        } else {
            (adopted, None)
        };
        let mut volumes = BTreeMap::new();
        let mut listed = Vec::new();
        for (device, volume_id) in attached {
            let Some(snapshot) = snapshots.iter().find(|s| &s.volume_id == volume_id) else {
                return Err(self
                    .fail(
                        draft,
                        "snapshot the volumes",
                        volume_id,
                        format!(
                            "CreateSnapshots returned no snapshot of volume {volume_id} ({device})"
                        ),
                        "run again; forensnap adopts the snapshots already made",
                    )
                    .await);
            };
            let mut state = VolumeState {
                device: device.clone(),
                ..Default::default()
            };
            state
                .snapshots
                .insert(stage::ORIGINAL.into(), snapshot.id.clone());
            listed.push(serde_json::json!({"device": device, "volume_id": volume_id, "snapshot_id": snapshot.id}));
            volumes.insert(volume_id.clone(), state);
        }
        let ids: Vec<String> = volumes
            .values()
            .filter_map(|v| v.snapshot(stage::ORIGINAL).map(str::to_string))
            .collect();
        self.record(
            draft
                .after(ids)
                .request_ids(request_id)
                .detail("volumes", listed)
                .detail("adopted", was_adopted),
        )
        .await?;
        self.progress.step(&format!(
            "snapshotted {} volumes of {}",
            volumes.len(),
            plan.instance_id
        ));
        Ok(volumes)
    }

    /// One volume from its member snapshot to a completed forensic copy, cleaned up.
    async fn volume(
        &self,
        volume_id: &str,
        mut state: VolumeState,
    ) -> Result<PreservedVolume, PreserveError> {
        let result = self.volume_steps(volume_id, &mut state).await;
        if result.is_err() {
            // Nothing stays shared after a failure; the custody log records the unshare.
            self.unshare(volume_id, &mut state).await;
        }
        result
    }

    async fn volume_steps(
        &self,
        volume_id: &str,
        state: &mut VolumeState,
    ) -> Result<PreservedVolume, PreserveError> {
        let plan = self.plan;
        let original_id = state
            .snapshot(stage::ORIGINAL)
            .unwrap_or_default()
            .to_string();
        let original = self
            .settle(self.member, volume_id, stage::ORIGINAL, &original_id, state)
            .await?;

        let needs_copy = plan.reencrypt_always
            || !original.encrypted
            || self.aws_managed(volume_id, &original).await?;
        let forensic_done = state.is_complete(stage::FORENSIC);
        let shareable = if needs_copy && !forensic_done {
            let copy = self
                .copy(
                    self.member,
                    volume_id,
                    stage::INTERMEDIATE,
                    &original_id,
                    &plan.member_region,
                    state,
                )
                .await?;
            self.settle(self.member, volume_id, stage::INTERMEDIATE, &copy, state)
                .await?;
            copy
        } else {
            state
                .snapshot(stage::INTERMEDIATE)
                .unwrap_or(&original_id)
                .to_string()
        };

        if !forensic_done {
            if state.shared.as_deref() != Some(&shareable) {
                self.share(volume_id, &shareable, state).await?;
            }
            let copy = self
                .copy(
                    self.forensic,
                    volume_id,
                    stage::FORENSIC,
                    &shareable,
                    &plan.member_region,
                    state,
                )
                .await?;
            let done = self
                .settle(self.forensic, volume_id, stage::FORENSIC, &copy, state)
                .await?;
            if done.kms_key_id.as_deref() != Some(plan.forensic_key_arn.as_str()) {
                let draft = self
                    .draft(Action::SnapshotCompleted)
                    .detail("volume_id", volume_id)
                    .detail("stage", stage::FORENSIC)
                    .detail("snapshot_id", &copy);
                return Err(self
                    .fail(
                        draft,
                        "check the forensic copy's key",
                        &copy,
                        format!(
                            "the copy is encrypted with {:?}, not the forensic key {}",
                            done.kms_key_id, plan.forensic_key_arn
                        ),
                        "report this: the copy was made with the wrong key",
                    )
                    .await);
            }
        }
        if let Some(shared) = state.shared.clone()
            && !self.unshare(volume_id, state).await
        {
            return Err(PreserveError::step(
                "remove the share",
                &plan.member_account,
                &shared,
                "ModifySnapshotAttribute remove failed (see the custody log)",
                format!(
                    "remove account {}'s createVolumePermission from {shared} by hand, or run again",
                    plan.forensic_account
                ),
            ));
        }
        let intermediate = state.snapshot(stage::INTERMEDIATE).map(str::to_string);
        if let Some(id) = &intermediate
            && !state.intermediate_deleted
        {
            let draft = self
                .draft(Action::SnapshotDeleted)
                .detail("volume_id", volume_id)
                .detail("stage", stage::INTERMEDIATE)
                .detail("snapshot_id", id)
                .before([id.clone()]);
            match self.member.delete_snapshot(id).await {
                Ok(done) => self.record(draft.request_ids(request_ids(&done))).await?,
                Err(e) if e.is_not_found() => {
                    self.record(draft.detail("already_gone", true)).await?
                }
                Err(e) => return Err(self
                    .fail(
                        draft,
                        "delete the intermediate copy",
                        id,
                        e,
                        "delete it by hand (it carries forensnap:intermediate=true) or run again",
                    )
                    .await),
            }
            state.intermediate_deleted = true;
        }
        let forensic_id = state
            .snapshot(stage::FORENSIC)
            .unwrap_or_default()
            .to_string();
        Ok(PreservedVolume {
            device: state.device.clone(),
            volume_id: volume_id.to_string(),
            member_snapshot_id: original_id,
            intermediate_snapshot_id: intermediate,
            snapshot_id: forensic_id,
            kms_key_id: plan.forensic_key_arn.clone(),
            size_gib: original.volume_size_gib,
        })
    }

    async fn aws_managed(
        &self,
        volume_id: &str,
        original: &SnapshotInfo,
    ) -> Result<bool, PreserveError> {
        let Some(key) = &original.kms_key_id else {
            return Ok(false);
        };
        self.member.is_aws_managed_key(key).await.map_err(|e| {
            PreserveError::step("look up the snapshot's key", &self.plan.member_account, &format!("{key} (volume {volume_id})"), e, "grant the role kms:DescribeKey on the volume keys, or set collect.reencrypt = \"always\"")
        })
    }

    /// Wait until a stage's snapshot settles; record its completion (once).
    async fn settle<E: Ec2>(
        &self,
        ec2: &E,
        volume_id: &str,
        stage: &str,
        snapshot_id: &str,
        state: &mut VolumeState,
    ) -> Result<SnapshotInfo, PreserveError> {
        let draft = self
            .volume_draft(Action::SnapshotCompleted, ec2, volume_id, stage)
            .detail("snapshot_id", snapshot_id)
            .after([snapshot_id.to_string()]);
        let waited = until_settled(ec2, snapshot_id, self.plan.backoff, |info| {
            self.progress.snapshot(volume_id, stage, info)
        })
        .await;
        let info = match waited {
            Ok(info) if info.state == SnapState::Completed => info,
            Ok(info) => {
                let why = info
                    .message
                    .clone()
                    .unwrap_or_else(|| "no reason given".into());
                let next = if why.contains("not accessible") {
                    format!(
                        "let account {} use the key in its key policy (kms:Decrypt, kms:DescribeKey, kms:CreateGrant), or set collect.reencrypt = \"always\" so the member account re-encrypts first; then run again",
                        ec2.account()
                    )
                } else {
                    "run again: forensnap starts this stage anew".to_string()
                };
                // `final_state = error` tells a later run to make this stage's snapshot anew.
                let draft = draft.detail("final_state", "error");
                state.snapshots.remove(stage);
                return Err(self.fail_in(ec2.account(), draft, "wait for the snapshot", snapshot_id, format!("snapshot {snapshot_id} ({stage} of {volume_id}) ended in state error: {why}"), next).await);
            }
            Err(WaitError::TimedOut(info)) => {
                let message = format!(
                    "snapshot {snapshot_id} ({stage} of {volume_id}) still pending at {} after collect.wait_timeout_minutes",
                    info.progress.unwrap_or_default()
                );
                return Err(self
                    .fail_in(
                        ec2.account(),
                        draft.detail("final_state", "pending"),
                        "wait for the snapshot",
                        snapshot_id,
                        message,
                        "run the same command again later: it resumes and waits for this snapshot",
                    )
                    .await);
            }
            Err(WaitError::Vanished) => {
                let draft = draft.detail("final_state", "gone");
                state.snapshots.remove(stage);
                return Err(self
                    .fail_in(
                        ec2.account(),
                        draft,
                        "wait for the snapshot",
                        snapshot_id,
                        "the snapshot no longer exists",
                        "find out who deleted it (CloudTrail DeleteSnapshot) and run again",
                    )
                    .await);
            }
            Err(WaitError::Aws(e)) => {
                return Err(self
                    .fail_in(
                        ec2.account(),
                        draft,
                        "wait for the snapshot",
                        snapshot_id,
                        e,
                        "run again",
                    )
                    .await);
            }
        };
        if !state.is_complete(stage) {
            self.record(
                draft
                    .detail("encrypted", info.encrypted)
                    .detail("kms_key_id", &info.kms_key_id)
                    .detail("volume_size_gib", info.volume_size_gib)
                    .detail("owner", &info.owner),
            )
            .await?;
            state
                .completed
                .insert(stage.to_string(), snapshot_id.to_string());
        }
        Ok(info)
    }

    /// CopySnapshot into `ec2`'s account at `stage`, once (adopting a lost answer on resume).
    async fn copy<E: Ec2>(
        &self,
        ec2: &E,
        volume_id: &str,
        stage: &str,
        source: &str,
        source_region: &str,
        state: &mut VolumeState,
    ) -> Result<String, PreserveError> {
        if let Some(existing) = state.snapshot(stage) {
            return Ok(existing.to_string());
        }
        let plan = self.plan;
        let description = format!("{} ({stage} copy of {source})", plan.description);
        let mut tags = BTreeMap::new();
        if stage == stage::INTERMEDIATE {
            tags = plan.member_tags.clone();
            tags.insert(
                INTERMEDIATE_TAG.0.to_string(),
                INTERMEDIATE_TAG.1.to_string(),
            );
        } else {
            tags.insert("forensnap:case".to_string(), plan.case.to_string());
            tags.insert("forensnap:volume".to_string(), volume_id.to_string());
            tags.insert("forensnap:source-snapshot".to_string(), source.to_string());
            tags.insert(
                "forensnap:source-account".to_string(),
                plan.member_account.clone(),
            );
        }
        let draft = self
            .volume_draft(Action::SnapshotCopied, ec2, volume_id, stage)
            .detail("source", source)
            .before([source.to_string()]);
        if state.copy_requested.contains_key(stage)
            && let Ok(found) = ec2.find_snapshots(&description).await
            && let Some(adopted) = found.first()
        {
            self.record(
                draft
                    .after([adopted.id.clone()])
                    .detail("snapshot_id", &adopted.id)
                    .detail("kms_key_id", &plan.forensic_key_arn)
                    .detail("adopted", true),
            )
            .await?;
            state
                .snapshots
                .insert(stage.to_string(), adopted.id.clone());
            return Ok(adopted.id.clone());
        }
        self.record(
            self.volume_draft(Action::CopyRequested, ec2, volume_id, stage)
                .detail("source", source)
                .detail("description", &description),
        )
        .await?;
        state
            .copy_requested
            .insert(stage.to_string(), source.to_string());
        let mut attempt = 0;
        let copied = loop {
            match ec2
                .copy_snapshot(
                    source,
                    source_region,
                    &plan.forensic_key_arn,
                    &description,
                    &tags,
                )
                .await
            {
                Ok(copied) => break copied,
                // Someone else's copies fill the 20-per-region limit: wait for a slot.
                Err(e) if e.kind == ErrorKind::LimitExceeded && attempt < 30 => {
                    self.progress.step(&format!(
                        "copy of {source} waits for a free copy slot in account {}",
                        ec2.account()
                    ));
                    tokio::time::sleep(plan.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    let next = if e.is_transient() {
                        "EC2 kept failing after the SDK's retries: run the same command again; it resumes".to_string()
                    } else {
                        format!(
                            "check that account {} may copy {source} (shared with it) and use key {} (kms:CreateGrant, kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey*, kms:DescribeKey), then run again",
                            ec2.account(),
                            plan.forensic_key_arn
                        )
                    };
                    return Err(self
                        .fail_in(ec2.account(), draft, "copy the snapshot", source, e, next)
                        .await);
                }
            }
        };
        let id = copied.value.clone();
        self.record(
            draft
                .after([id.clone()])
                .request_ids(request_ids(&copied))
                .detail("snapshot_id", &id)
                .detail("kms_key_id", &plan.forensic_key_arn)
                .detail("tags", &tags),
        )
        .await?;
        state.copy_requested.remove(stage);
        state.snapshots.insert(stage.to_string(), id.clone());
        Ok(id)
    }

    async fn share(
        &self,
        volume_id: &str,
        snapshot_id: &str,
        state: &mut VolumeState,
    ) -> Result<(), PreserveError> {
        let plan = self.plan;
        let draft = self
            .draft(Action::SnapshotShared)
            .detail("volume_id", volume_id)
            .detail("snapshot_id", snapshot_id)
            .detail("with", &plan.forensic_account)
            .before([snapshot_id.to_string()]);
        // Recorded as shared before the call: a crash in between still leads to an unshare.
        state.shared = Some(snapshot_id.to_string());
        match self
            .member
            .set_share(snapshot_id, &plan.forensic_account, true)
            .await
        {
            Ok(done) => self.record(draft.request_ids(request_ids(&done))).await,
            Err(e) => {
                state.shared = None;
                let next = if e.kind == ErrorKind::NotPermitted {
                    "the snapshot is on the AWS managed aws/ebs key: set collect.reencrypt = \"always\" or report this".to_string()
                } else {
                    "check the role's ec2:ModifySnapshotAttribute right, then run again".to_string()
                };
                Err(self
                    .fail(
                        draft,
                        "share the snapshot with the forensic account",
                        snapshot_id,
                        e,
                        next,
                    )
                    .await)
            }
        }
    }

    /// Remove the share, if any; records the act (or its failure, keeping the share in
    /// `state`). Returns whether nothing is shared any more.
    async fn unshare(&self, volume_id: &str, state: &mut VolumeState) -> bool {
        let Some(snapshot_id) = state.shared.clone() else {
            return true;
        };
        let plan = self.plan;
        let draft = self
            .draft(Action::SnapshotUnshared)
            .detail("volume_id", volume_id)
            .detail("snapshot_id", &snapshot_id)
            .detail("with", &plan.forensic_account)
            .before([snapshot_id.clone()]);
        let recorded = match self
            .member
            .set_share(&snapshot_id, &plan.forensic_account, false)
            .await
        {
            Ok(done) => self.record(draft.request_ids(request_ids(&done))).await,
            Err(e) if e.is_not_found() => self.record(draft.detail("already_gone", true)).await,
            Err(e) => {
                let _ = self.record(draft.failed(e.to_string())).await;
                return false;
            }
        };
        state.shared = None;
        recorded.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use forensnap_core::Outcome;

    use super::*;
    use crate::fake::{Cloud, FORENSIC, FORENSIC_KEY, MEMBER, Shared, accounts, plan};
    use forensnap_store::{BucketLock, MemoryStore};

    const AWS_EBS: &str = "arn:aws:kms:us-east-1:111111111111:key/aws-ebs";
    const MEMBER_CMK: &str = "arn:aws:kms:us-east-1:111111111111:key/cmk";

    fn cloud(cmk_usable: bool) -> Shared {
        let mut cloud = Cloud::default();
        let volumes = BTreeMap::from([
            (
                "/dev/xvda".to_string(),
                ("vol-root".to_string(), Some(AWS_EBS.to_string())),
            ),
            ("/dev/xvdf".to_string(), ("vol-data".to_string(), None)),
            (
                "/dev/xvdg".to_string(),
                ("vol-logs".to_string(), Some(MEMBER_CMK.to_string())),
            ),
        ]);
        cloud.instances.insert("i-1".into(), volumes);
        cloud.aws_managed_keys.insert(AWS_EBS.into());
        cloud
            .key_users
            .insert(FORENSIC_KEY.into(), [MEMBER.to_string()].into());
        if cmk_usable {
            cloud
                .key_users
                .insert(MEMBER_CMK.into(), [FORENSIC.to_string()].into());
        }
        Shared::new(std::sync::Mutex::new(cloud))
    }

    async fn run(
        cloud: &Shared,
        store: MemoryStore,
        plan: &Plan,
    ) -> (
        Result<Preserved, PreserveError>,
        Vec<forensnap_core::Event>,
        MemoryStore,
    ) {
        let (member, forensic, actor) = accounts(cloud);
        let mut log = CustodyLog::open(store, "", &plan.case, actor, None)
            .await
            .expect("open log");
        let result = preserve(plan, &member, &forensic, &mut log, &SilentProgress).await;
        let events = log.events().to_vec();
        (result, events, log.store().clone())
    }

    fn count(events: &[forensnap_core::Event], action: Action) -> usize {
        events
            .iter()
            .filter(|e| e.kind() == Some(action) && e.outcome == Outcome::Ok)
            .count()
    }

    #[tokio::test]
    async fn every_volume_reaches_the_forensic_account_and_nothing_is_left_behind() {
        let cloud = cloud(true);
        let (result, events, _) = run(&cloud, MemoryStore::new(), &plan()).await;
        let preserved = result.expect("preserved");
        assert_eq!(preserved.volumes.len(), 3);
        let state = cloud.lock().expect("lock");
        for v in &preserved.volumes {
            let snap = &state.snapshots[&v.snapshot_id];
            assert_eq!(
                (snap.info.owner.as_str(), snap.info.kms_key_id.as_deref()),
                (FORENSIC, Some(FORENSIC_KEY))
            );
            assert_eq!(
                v.intermediate_snapshot_id.is_some(),
                v.volume_id != "vol-logs",
                "only aws/ebs and unencrypted need a member copy"
            );
            if let Some(id) = &v.intermediate_snapshot_id {
                assert!(
                    !state.snapshots.contains_key(id),
                    "intermediate {id} deleted"
                );
            }
            assert!(
                state.snapshots.contains_key(&v.member_snapshot_id),
                "original kept"
            );
        }
        assert!(
            state.snapshots.values().all(|s| s.shared_with.is_empty()),
            "nothing shared"
        );
        assert_eq!(count(&events, Action::SnapshotShared), 3);
        assert_eq!(count(&events, Action::SnapshotUnshared), 3);
        assert_eq!(count(&events, Action::SnapshotDeleted), 2);
        assert_eq!(
            events.last().map(|e| e.action.as_str()),
            Some(Action::PreservationCompleted.as_str())
        );
        assert!(!state.calls.iter().any(|c| c.contains("Stop")
            || c.contains("Detach")
            || c.contains("Modify") && !c.ends_with("ModifySnapshotAttribute")));
    }

    #[tokio::test]
    async fn a_second_run_resumes_and_snapshots_nothing_twice() {
        let cloud = cloud(true);
        let (first, events, store) = run(&cloud, MemoryStore::new(), &plan()).await;
        first.expect("first run");
        let snapshots = cloud.lock().expect("lock").snapshots.len();
        let (second, all, _) = run(&cloud, store, &plan()).await;
        second.expect("second run");
        assert_eq!(cloud.lock().expect("lock").snapshots.len(), snapshots);
        let calls = &cloud.lock().expect("lock").calls;
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.ends_with("CreateSnapshots"))
                .count(),
            1
        );
        assert_eq!(
            calls.iter().filter(|c| c.ends_with("CopySnapshot")).count(),
            5
        );
        assert!(all.len() > events.len());
        assert_eq!(count(&all, Action::InstanceRecorded), 1);
    }

    #[tokio::test]
    async fn a_full_copy_limit_is_waited_out() {
        let cloud = cloud(true);
        cloud
            .lock()
            .expect("lock")
            .failing_times
            .insert("CopySnapshot", ("ResourceLimitExceeded".into(), 3));
        let (result, _, _) = run(&cloud, MemoryStore::new(), &plan()).await;
        result.expect("the copies go through once slots free up");
        let calls = &cloud.lock().expect("lock").calls;
        assert_eq!(
            calls.iter().filter(|c| c.ends_with("CopySnapshot")).count(),
            5 + 3
        );
    }

    #[tokio::test]
    async fn an_unlocked_bucket_stops_the_run_before_any_member_call() {
        let cloud = cloud(true);
        let store = MemoryStore::new();
        store.set_bucket_lock(BucketLock {
            enabled: true,
            default_mode: Some("GOVERNANCE".into()),
            default_days: Some(30),
            versioning: Some("Enabled".into()),
        });
        let (result, events, _) = run(&cloud, store, &plan()).await;
        let err = result.expect_err("refused");
        assert!(
            err.to_string().contains("GOVERNANCE instead of COMPLIANCE"),
            "{err}"
        );
        assert!(cloud.lock().expect("lock").calls.is_empty());
        assert!(events.is_empty());
    }

    #[tokio::test]
    async fn a_refused_role_is_recorded_and_nothing_else_happens() {
        let cloud = cloud(true);
        cloud
            .lock()
            .expect("lock")
            .failing
            .insert("GetCallerIdentity", "AccessDenied".into());
        let (result, events, _) = run(&cloud, MemoryStore::new(), &plan()).await;
        let err = result.expect_err("refused").to_string();
        assert!(
            err.contains("assume the collector role failed in account 111111111111"),
            "{err}"
        );
        let actions: Vec<_> = events
            .iter()
            .map(|e| (e.action.as_str(), e.outcome))
            .collect();
        assert_eq!(
            actions,
            [
                (Action::CollectionStarted.as_str(), Outcome::Ok),
                (Action::BucketChecked.as_str(), Outcome::Ok),
                (Action::RoleAssumed.as_str(), Outcome::Failed),
                (Action::CollectionFailed.as_str(), Outcome::Failed)
            ]
        );
        assert!(
            !cloud
                .lock()
                .expect("lock")
                .calls
                .iter()
                .any(|c| c.ends_with("CreateSnapshots"))
        );
    }

    #[tokio::test]
    async fn an_unusable_key_fails_that_volume_unshared_and_the_others_finish() {
        let cloud = cloud(false);
        let (result, events, _) = run(&cloud, MemoryStore::new(), &plan()).await;
        let err = result.expect_err("the CMK volume fails").to_string();
        assert!(
            err.contains("not accessible") && err.contains("collect.reencrypt"),
            "{err}"
        );
        let state = cloud.lock().expect("lock");
        assert!(
            state.snapshots.values().all(|s| s.shared_with.is_empty()),
            "nothing left shared"
        );
        let forensic_done = state
            .snapshots
            .values()
            .filter(|s| s.info.owner == FORENSIC && s.info.state == SnapState::Completed)
            .count();
        assert_eq!(forensic_done, 2, "the other volumes finished");
        assert_eq!(
            events.last().map(|e| (e.action.as_str(), e.outcome)),
            Some((Action::CollectionFailed.as_str(), Outcome::Failed))
        );
    }
}
