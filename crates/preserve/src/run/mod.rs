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

//!
//! * this module -- the run: bucket check, instance record, CreateSnapshots, the volumes in turn;
//! * [`volume`] -- one volume's snapshots: wait, re-encrypt, share, copy, unshare, clean up.

mod volume;

use std::collections::BTreeMap;

use forensnap_core::CaseLayout;
use forensnap_core::custody::{console_output_item, instance_record_item};
use forensnap_core::keys::{CONSOLE_OUTPUT_PATH, INSTANCE_RECORD_PATH};
use forensnap_core::{Action, ChainHead, EventDraft};
use futures::StreamExt;

use crate::error::PreserveError;
use forensnap_custody::Custody;
use forensnap_store::{EvidenceAudit, EvidenceWrite, Stored};

use crate::state::{CaseState, VolumeState, stage};
use forensnap_ports::{Called, Ec2};

use crate::plan::{Plan, Preserved, PreservedVolume, Progress, StoredRef};

struct Run<'a, M, F, S> {
    plan: &'a Plan,
    member: &'a M,
    forensic: &'a F,
    custody: Custody<S>,
    progress: &'a dyn Progress,
}

/// Preserve one instance's volumes in the forensic account (see the module docs).
pub async fn preserve<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    forensic: &F,
    custody: &Custody<S>,
    progress: &dyn Progress,
) -> Result<Preserved, PreserveError> {
    check_bucket(custody.store()).await?;
    let run = Run {
        plan,
        member,
        forensic,
        custody: custody.clone(),
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
        self.custody.record(draft).await?;
        Ok(())
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
        let (bucket, layout) = (
            self.custody.store().bucket().to_string(),
            self.custody.layout().clone(),
        );
        let state = CaseState::from_events(
            &self.custody.events().await,
            &plan.member_account,
            &plan.instance_id,
        );
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
        let head: ChainHead = self.custody.head().await;
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
        let result = self.custody.store().put_new(key, bytes, content_type).await;
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
}

#[cfg(test)]
mod tests;
