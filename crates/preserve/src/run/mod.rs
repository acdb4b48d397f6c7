//! The preservation run for one instance.
//!
//! Order of acts, each recorded as a custody event before the next begins:
//! bucket checked -> role assumed -> instance and console recorded -> what must come before the
//! snapshots ([`BeforeSnapshots`]: memory capture, when asked) -> CreateSnapshots -> per
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

mod leftovers;
mod volume;

pub use leftovers::{MemberLeftover, end_member_leftovers, member_leftovers};

use std::future::Future;

use std::collections::BTreeMap;

use forensnap_core::CaseLayout;
use forensnap_core::custody::{console_output_item, instance_record_item};
use forensnap_core::details::{
    BucketChecked, CollectionFailed, CollectionStarted, ConsoleRecorded, CreatedSnapshot, Details,
    InstanceRecorded, PreservationCompleted, PreservedSnapshot, RoleAssumed, SnapshotsCreated,
    SnapshotsRequested, StoredObject, Subject,
};
use forensnap_core::keys::{CONSOLE_OUTPUT_PATH, INSTANCE_RECORD_PATH};
use forensnap_core::{ChainHead, EventDraft};
use futures::StreamExt;

use crate::error::PreserveError;
use forensnap_core::custody::sha256_hex;
use forensnap_custody::Custody;
use forensnap_store::{ErrorKind, EvidenceAudit, EvidenceWrite, Stored};

use crate::state::{CaseState, Stage, VolumeState};
use forensnap_ports::{Called, Ec2, InstanceRecord};

use crate::plan::{Plan, Preserved, PreservedVolume, Progress, StoredRef};

struct Run<'a, M, F, S> {
    plan: &'a Plan,
    member: &'a M,
    forensic: &'a F,
    custody: Custody<S>,
    progress: &'a dyn Progress,
}

/// What runs once the instance is recorded and before its volumes are snapshotted: the most
/// volatile evidence first (memory capture). It records its own events and keeps its own
/// outcome; preservation goes on whatever it found.
pub trait BeforeSnapshots: Send + Sync {
    /// Run, given the instance as DescribeInstances recorded it.
    fn run(&self, instance: &InstanceRecord) -> impl Future<Output = ()> + Send;
}

/// Nothing before the snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingFirst;

impl BeforeSnapshots for NothingFirst {
    async fn run(&self, _: &InstanceRecord) {}
}

/// Preserve one instance's volumes in the forensic account (see the module docs).
pub async fn preserve<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    forensic: &F,
    custody: &Custody<S>,
    progress: &dyn Progress,
) -> Result<Preserved, PreserveError> {
    preserve_with(plan, member, forensic, custody, progress, &NothingFirst).await
}

/// [`preserve`], with `first` run between the instance's record and its snapshots.
pub async fn preserve_with<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit, B: BeforeSnapshots>(
    plan: &Plan,
    member: &M,
    forensic: &F,
    custody: &Custody<S>,
    progress: &dyn Progress,
    first: &B,
) -> Result<Preserved, PreserveError> {
    check_bucket(custody.store(), plan.retention_days).await?;
    let run = Run {
        plan,
        member,
        forensic,
        custody: custody.clone(),
        progress,
    };
    let result = run.preserve(first).await;
    if let Err(err) = &result {
        let draft = run
            .draft(CollectionFailed::default())
            .failed(err.to_string());
        let _ = run.record(draft).await;
    }
    result
}

/// What an earlier run preserved, read from the custody log alone (no AWS call): the case's
/// last `preservation.completed` of the instance. The daemon's volume workers start from it, so
/// a case split across machines assumes the member role and snapshots once.
pub async fn preserved_from_log<S: EvidenceWrite>(
    plan: &Plan,
    custody: &Custody<S>,
) -> Result<Preserved, PreserveError> {
    let events = custody.events().await;
    let subject = Subject {
        instance: plan.instance_id.clone(),
        member_account: plan.member_account.clone(),
    };
    let ours = |e: &&forensnap_core::Event| {
        e.outcome == forensnap_core::Outcome::Ok && e.subject().as_ref() == Some(&subject)
    };
    let completed = events
        .iter()
        .rev()
        .filter(ours)
        .find_map(|e| match e.details() {
            Ok(Some(Details::PreservationCompleted(d))) => Some(d),
            _ => None,
        });
    let Some(completed) = completed else {
        return Err(PreserveError::Step {
            step: "read the preservation",
            account: plan.member_account.clone(),
            resource: plan.instance_id.clone(),
            message: format!(
                "case {} records no completed preservation of the instance",
                plan.case
            ),
            next: "run the whole collection (forensnap collect, or submit the case to the daemon)"
                .into(),
        });
    };
    let size_of = |snapshot_id: &str| {
        events
            .iter()
            .filter(ours)
            .find_map(|e| match e.details() {
                Ok(Some(Details::SnapshotCompleted(d))) if d.snapshot_id == snapshot_id => {
                    d.completed.map(|c| c.volume_size_gib)
                }
                _ => None,
            })
            .unwrap_or(0)
    };
    let volumes = completed
        .volumes
        .iter()
        .map(|v| PreservedVolume {
            device: v.device.clone(),
            volume_id: v.volume_id.clone(),
            member_snapshot_id: v.member_snapshot_id.clone(),
            intermediate_snapshot_id: None,
            snapshot_id: v.snapshot_id.clone(),
            kms_key_id: v.kms_key_id.clone(),
            size_gib: size_of(&v.snapshot_id),
        })
        .collect();
    let head = custody.head().await;
    Ok(Preserved {
        case: plan.case.to_string(),
        account: plan.member_account.clone(),
        region: plan.member_region.clone(),
        instance_id: plan.instance_id.clone(),
        instance_record: None,
        console_output: None,
        volumes,
        custody_events: head.seq,
        custody_head_sha256: head.sha256,
    })
}

/// Remove every share of the instance's snapshots that a stopped run left behind (Ctrl-C,
/// SIGTERM, a lost lease: the run was dropped between `snapshot.shared` and
/// `snapshot.unshared`), each recorded as `snapshot.unshared`. Returns how many it removed. The
/// next run shares again if its copy still needs the share.
pub async fn release_shares<M: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    custody: &Custody<S>,
) -> Result<usize, PreserveError> {
    let run = Run {
        plan,
        member,
        forensic: member,
        custody: custody.clone(),
        progress: &crate::plan::SilentProgress,
    };
    let state = CaseState::from_events(
        &custody.events().await,
        &plan.member_account,
        &plan.instance_id,
    )?;
    let mut released = 0;
    for (volume_id, mut volume) in state.volumes {
        if let Some(snapshot) = volume.shared.clone() {
            if run.unshare(&volume_id, &mut volume).await {
                released += 1;
                tracing::info!(volume_id, snapshot, "share left by a stopped run removed");
            } else {
                tracing::warn!(
                    volume_id,
                    snapshot,
                    "cannot remove the share a stopped run left; the next run removes it"
                );
            }
        }
    }
    Ok(released)
}

/// The bucket holds evidence as forensnap needs: Object Lock on, COMPLIANCE by default for at
/// least `retention_days` (every object takes the bucket's default: forensnap sends no
/// per-object retention, which S3 would authorise as `s3:PutObjectRetention`, an action the
/// forensic account's bucket policy denies to everyone), versioning on.
async fn check_bucket<S: EvidenceWrite + EvidenceAudit>(
    store: &S,
    retention_days: u32,
) -> Result<(), PreserveError> {
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
    } else if lock.default_days.unwrap_or(0) < retention_days {
        let days = lock.default_days.unwrap_or(0);
        return Err(PreserveError::Bucket {
            bucket,
            problem: format!(
                "its default COMPLIANCE retention is {days} days, shorter than the configured retention_days = {retention_days}; every evidence object takes the bucket's default"
            ),
            next: format!(
                "raise the bucket's default retention to at least {retention_days} days (forensic-account.yaml parameter EvidenceRetentionDays), or lower [forensic] retention_days to {days}"
            ),
        });
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
    /// An event about the instance, in the member account and region.
    fn draft(&self, details: impl Into<Details>) -> EventDraft {
        EventDraft::new(details)
            .at(&self.plan.member_account, &self.plan.member_region)
            .about(&Subject {
                instance: self.plan.instance_id.clone(),
                member_account: self.plan.member_account.clone(),
            })
    }

    /// An event about the instance, in `ec2`'s account and region.
    fn draft_in<E: Ec2>(&self, ec2: &E, details: impl Into<Details>) -> EventDraft {
        self.draft(details).at(ec2.account(), ec2.region())
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

    async fn preserve<B: BeforeSnapshots>(&self, first: &B) -> Result<Preserved, PreserveError> {
        let plan = self.plan;
        let (bucket, layout) = (
            self.custody.store().bucket().to_string(),
            self.custody.layout().clone(),
        );
        let state = CaseState::from_events(
            &self.custody.events().await,
            &plan.member_account,
            &plan.instance_id,
        )?;
        self.record(self.draft(CollectionStarted {
            tool: plan.tool.clone(),
            run: state.runs + 1,
            resumed: state.runs > 0,
        }))
        .await?;
        self.record(self.draft(BucketChecked {
            bucket: bucket.clone(),
            object_lock: "COMPLIANCE".into(),
        }))
        .await?;
        self.progress.step(&format!(
            "evidence bucket {bucket}: Object Lock COMPLIANCE, versioning on"
        ));

        let draft = self
            .draft(RoleAssumed {
                role_arn: plan.role_arn.clone(),
                session_name: plan.session_name.clone(),
                source_identity: plan.source_identity.clone(),
            })
            .before([plan.role_arn.clone()]);
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
        first.run(&record).await;
        let originals = self.snapshot_volumes(&state, &record.volumes).await?;

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
        let volumes = preserved
            .iter()
            .map(|v| PreservedSnapshot {
                device: v.device.clone(),
                volume_id: v.volume_id.clone(),
                member_snapshot_id: v.member_snapshot_id.clone(),
                snapshot_id: v.snapshot_id.clone(),
                kms_key_id: v.kms_key_id.clone(),
            })
            .collect();
        self.record(
            self.draft(PreservationCompleted { volumes })
                .after(preserved.iter().map(|v| v.snapshot_id.clone())),
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
    ) -> Result<(InstanceRecord, (Option<StoredRef>, Option<StoredRef>)), PreserveError> {
        let plan = self.plan;
        let draft = self
            .draft(InstanceRecorded::default())
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
            let key = layout
                .item(&instance_record_item(&plan.instance_id))
                .file(INSTANCE_RECORD_PATH);
            let put = self
                .store_evidence(
                    |stored| {
                        self.draft(InstanceRecorded {
                            volumes: Some(record.volumes.clone()),
                            availability_zone: record.availability_zone.clone(),
                            stored,
                        })
                        .before([plan.instance_id.clone()])
                        .request_ids(request_ids(&described))
                    },
                    bucket,
                    &key,
                    record.json.clone(),
                    "application/json",
                )
                .await?;
            stored.0 = Some(put.into());
        }
        if !state.console_recorded {
            let draft = self
                .draft(ConsoleRecorded::default())
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
            let ids = request_ids(&console);
            let put = self
                .store_evidence(
                    |stored| {
                        self.draft(ConsoleRecorded { stored })
                            .before([plan.instance_id.clone()])
                            .request_ids(ids.clone())
                    },
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
        Ok((record, stored))
    }

    /// Store an evidence object under Object Lock and record the event `draft` makes, given
    /// where the object went and its SHA-256 (`None`: the store failed).
    async fn store_evidence(
        &self,
        draft: impl Fn(Option<StoredObject>) -> EventDraft,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Stored, PreserveError> {
        let (put, adopted, unstored_sha256) =
            match self.custody.store().put_new(key, bytes.clone(), content_type).await {
                Ok(stored) => (stored.value, false, None),
                Err(e) if e.kind == ErrorKind::Exists => {
                    let (put, differs) = self.adopt(key, &bytes, draft(None)).await?;
                    (put, true, differs)
                }
                Err(e) => return Err(self.fail(draft(None), "store evidence", key, e, "check the forensic credentials' s3:PutObject and s3:PutObjectRetention rights, then run again").await),
            };
        let stored = StoredObject {
            key: key.to_string(),
            version_id: put.version_id.clone(),
            sha256: put.sha256.clone(),
            size: put.size,
            adopted,
            unstored_sha256,
        };
        self.record(draft(Some(stored)).after([format!("s3://{bucket}/{key}")]))
            .await?;
        Ok(put)
    }

    /// The object at `key` that an earlier run stored and died before recording (the key
    /// exists, so this run's `bytes` cannot be stored): taken as it stands, with the SHA-256
    /// of `bytes` when they differ from it (a capture made later, kept out of the record).
    async fn adopt(
        &self,
        key: &str,
        bytes: &[u8],
        draft: EventDraft,
    ) -> Result<(Stored, Option<String>), PreserveError> {
        let store = self.custody.store();
        let found = match (store.get(key).await, store.head(key).await) {
            (Ok(Some(existing)), Ok(Some(head))) => (existing, head.version_id),
            (Err(e), _) | (_, Err(e)) => {
                return Err(self
                    .fail(
                        draft,
                        "read the evidence an earlier run stored",
                        key,
                        e,
                        "check the forensic credentials' s3:GetObject right, then run again",
                    )
                    .await);
            }
            _ => {
                return Err(self
                    .fail(
                        draft,
                        "read the evidence an earlier run stored",
                        key,
                        "the key exists but cannot be read (deleted since?)",
                        "run again",
                    )
                    .await);
            }
        };
        let (existing, version_id) = found;
        let sha256 = sha256_hex(&existing);
        let ours = sha256_hex(bytes);
        let differs = (ours != sha256).then_some(ours);
        self.progress.step(&format!(
            "{key} was stored by an earlier run that stopped before recording it: kept as it stands{}",
            if differs.is_some() { " (this run's capture differs and is not stored)" } else { "" }
        ));
        tracing::info!(
            key,
            sha256,
            differs = differs.is_some(),
            "adopted evidence an earlier run stored"
        );
        Ok((
            Stored {
                bucket: store.bucket().to_string(),
                key: key.to_string(),
                version_id,
                sha256,
                size: existing.len() as u64,
            },
            differs,
        ))
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
            .draft(SnapshotsCreated::default())
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
                self.draft(SnapshotsRequested {
                    description: plan.description.clone(),
                    tags: plan.member_tags.clone(),
                })
                .before([plan.instance_id.clone()]),
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
            state.snapshots.insert(Stage::Original, snapshot.id.clone());
            listed.push(CreatedSnapshot {
                device: device.clone(),
                volume_id: volume_id.clone(),
                snapshot_id: snapshot.id.clone(),
            });
            volumes.insert(volume_id.clone(), state);
        }
        let ids: Vec<String> = volumes
            .values()
            .filter_map(|v| v.snapshot(Stage::Original).map(str::to_string))
            .collect();
        self.record(
            self.draft(SnapshotsCreated {
                volumes: listed,
                adopted: Some(was_adopted),
            })
            .before(std::iter::once(plan.instance_id.clone()).chain(attached.values().cloned()))
            .after(ids)
            .request_ids(request_id),
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
