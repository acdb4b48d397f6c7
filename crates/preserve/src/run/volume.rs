//! One volume's way from its member-account snapshot to a completed forensic-account copy:
//! settle, re-encrypt when the snapshot cannot be shared as it is, share with the forensic
//! account only, copy under the forensic key, unshare, delete the intermediate copy.

use std::collections::BTreeMap;

use forensnap_core::details::{
    CompletedSnapshot, CopyRequested, Details, FinalState, Share, SnapshotCompleted,
    SnapshotCopied, SnapshotDeleted,
};

use crate::error::PreserveError;
use forensnap_store::{ErrorKind, EvidenceAudit, EvidenceWrite};

use crate::state::{Stage, VolumeState};
use crate::wait::{WaitError, until_settled};
use forensnap_ports::{Ec2, SnapState, SnapshotInfo};

use super::{Run, request_ids};
use crate::plan::{INTERMEDIATE_TAG, PreservedVolume};

impl<M: Ec2, F: Ec2, S: EvidenceWrite + EvidenceAudit> Run<'_, M, F, S> {
    /// One volume from its member snapshot to a completed forensic copy, cleaned up.
    pub(super) async fn volume(
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
            .snapshot(Stage::Original)
            .unwrap_or_default()
            .to_string();
        let original = self
            .settle(self.member, volume_id, Stage::Original, &original_id, state)
            .await?;

        let needs_copy = plan.reencrypt_always
            || !original.encrypted
            || self.aws_managed(volume_id, &original).await?;
        let forensic_done = state.is_complete(Stage::Forensic);
        let shareable = if needs_copy && !forensic_done {
            let copy = self
                .copy(
                    self.member,
                    volume_id,
                    Stage::Intermediate,
                    &original_id,
                    &plan.member_region,
                    state,
                )
                .await?;
            self.settle(self.member, volume_id, Stage::Intermediate, &copy, state)
                .await?;
            copy
        } else {
            state
                .snapshot(Stage::Intermediate)
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
                    Stage::Forensic,
                    &shareable,
                    &plan.member_region,
                    state,
                )
                .await?;
            let done = self
                .settle(self.forensic, volume_id, Stage::Forensic, &copy, state)
                .await?;
            if done.kms_key_id.as_deref() != Some(plan.forensic_key_arn.as_str()) {
                let draft = self.draft(SnapshotCompleted {
                    volume_id: volume_id.to_string(),
                    stage: Stage::Forensic,
                    snapshot_id: copy.clone(),
                    final_state: None,
                    completed: None,
                });
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
        let intermediate = state.snapshot(Stage::Intermediate).map(str::to_string);
        if let Some(id) = &intermediate
            && !state.intermediate_deleted
        {
            self.delete_intermediate(volume_id, id).await?;
            state.intermediate_deleted = true;
        }
        let forensic_id = state
            .snapshot(Stage::Forensic)
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

    /// Delete intermediate copy `id` of `volume_id` in the member account, recorded as
    /// `snapshot.deleted` (`already_gone` when an earlier run deleted it and died before
    /// recording it).
    pub(super) async fn delete_intermediate(
        &self,
        volume_id: &str,
        id: &str,
    ) -> Result<(), PreserveError> {
        let deleted = |already_gone| {
            self.draft(SnapshotDeleted {
                volume_id: volume_id.to_string(),
                stage: Stage::Intermediate,
                snapshot_id: id.to_string(),
                already_gone,
            })
            .before([id.to_string()])
        };
        let draft = deleted(false);
        match self.member.delete_snapshot(id).await {
            Ok(done) => self.record(draft.request_ids(request_ids(&done))).await?,
            Err(e) if e.is_not_found() => self.record(deleted(true)).await?,
            // A run that died after DeleteSnapshot and before recording it finds the copy
            // gone; a role allowed to delete only snapshots tagged forensnap:intermediate is
            // then refused (a gone snapshot has no tags) rather than told "not found".
            Err(e) if e.kind == ErrorKind::Denied && self.gone(id).await => {
                self.record(deleted(true)).await?
            }
            Err(e) => {
                return Err(self
                    .fail(
                        draft,
                        "delete the intermediate copy",
                        id,
                        e,
                        "delete it by hand (it carries forensnap:intermediate=true) or run again",
                    )
                    .await);
            }
        }
        Ok(())
    }

    /// Whether the member account no longer has snapshot `id` (DescribeSnapshots finds
    /// nothing). An error answers "not known to be gone".
    async fn gone(&self, id: &str) -> bool {
        match self.member.describe_snapshot(id).await {
            Ok(found) => found.value.is_none(),
            Err(e) => e.is_not_found(),
        }
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
        stage: Stage,
        snapshot_id: &str,
        state: &mut VolumeState,
    ) -> Result<SnapshotInfo, PreserveError> {
        let completed = |final_state, completed| {
            self.draft_in(
                ec2,
                SnapshotCompleted {
                    volume_id: volume_id.to_string(),
                    stage,
                    snapshot_id: snapshot_id.to_string(),
                    final_state,
                    completed,
                },
            )
            .after([snapshot_id.to_string()])
        };
        let draft = completed(None, None);
        let waited = until_settled(ec2, snapshot_id, self.plan.backoff, |info| {
            self.progress.snapshot(volume_id, stage.as_str(), info)
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
                let draft = completed(Some(FinalState::Error), None);
                state.snapshots.remove(&stage);
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
                        completed(Some(FinalState::Pending), None),
                        "wait for the snapshot",
                        snapshot_id,
                        message,
                        "run the same command again later: it resumes and waits for this snapshot",
                    )
                    .await);
            }
            Err(WaitError::Vanished) => {
                let draft = completed(Some(FinalState::Gone), None);
                state.snapshots.remove(&stage);
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
            self.record(completed(
                None,
                Some(CompletedSnapshot {
                    encrypted: info.encrypted,
                    kms_key_id: info.kms_key_id.clone(),
                    volume_size_gib: info.volume_size_gib,
                    owner: info.owner.clone(),
                }),
            ))
            .await?;
            state.completed.insert(stage, snapshot_id.to_string());
        }
        Ok(info)
    }

    /// CopySnapshot into `ec2`'s account at `stage`, once (adopting a lost answer on resume).
    async fn copy<E: Ec2>(
        &self,
        ec2: &E,
        volume_id: &str,
        stage: Stage,
        source: &str,
        source_region: &str,
        state: &mut VolumeState,
    ) -> Result<String, PreserveError> {
        if let Some(existing) = state.snapshot(stage) {
            return Ok(existing.to_string());
        }
        let plan = self.plan;
        let description = copy_description(plan, stage, source);
        let mut tags = BTreeMap::new();
        if stage == Stage::Intermediate {
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
        let copied =
            |snapshot_id: Option<&str>, tags: Option<&BTreeMap<String, String>>, adopted| {
                self.draft_in(
                    ec2,
                    SnapshotCopied {
                        volume_id: volume_id.to_string(),
                        stage,
                        source: source.to_string(),
                        kms_key_id: snapshot_id.map(|_| plan.forensic_key_arn.clone()),
                        snapshot_id: snapshot_id.map(str::to_string),
                        tags: tags.cloned(),
                        adopted,
                    },
                )
                .before([source.to_string()])
            };
        let draft = copied(None, None, false);
        if state.copy_requested.contains_key(&stage)
            && let Ok(found) = ec2.find_snapshots(&description).await
            && let Some(adopted) = found.first()
        {
            self.record(copied(Some(&adopted.id), None, true).after([adopted.id.clone()]))
                .await?;
            state.snapshots.insert(stage, adopted.id.clone());
            return Ok(adopted.id.clone());
        }
        self.record(self.draft_in(
            ec2,
            CopyRequested {
                volume_id: volume_id.to_string(),
                stage,
                source: source.to_string(),
                description: description.clone(),
            },
        ))
        .await?;
        state.copy_requested.insert(stage, source.to_string());
        let mut attempt = 0;
        let made = loop {
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
        let id = made.value.clone();
        self.record(
            copied(Some(&id), Some(&tags), false)
                .after([id.clone()])
                .request_ids(request_ids(&made)),
        )
        .await?;
        state.copy_requested.remove(&stage);
        state.snapshots.insert(stage, id.clone());
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
            .draft(Details::SnapshotShared(Share {
                volume_id: volume_id.to_string(),
                snapshot_id: snapshot_id.to_string(),
                with: plan.forensic_account.clone(),
                already_gone: false,
            }))
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
    pub(super) async fn unshare(&self, volume_id: &str, state: &mut VolumeState) -> bool {
        let Some(snapshot_id) = state.shared.clone() else {
            return true;
        };
        let plan = self.plan;
        let unshared = |already_gone| {
            self.draft(Details::SnapshotUnshared(Share {
                volume_id: volume_id.to_string(),
                snapshot_id: snapshot_id.clone(),
                with: plan.forensic_account.clone(),
                already_gone,
            }))
            .before([snapshot_id.clone()])
        };
        let draft = unshared(false);
        let recorded = match self
            .member
            .set_share(&snapshot_id, &plan.forensic_account, false)
            .await
        {
            Ok(done) => self.record(draft.request_ids(request_ids(&done))).await,
            Err(e) if e.is_not_found() => self.record(unshared(true)).await,
            Err(e) => {
                let _ = self.record(draft.failed(e.to_string())).await;
                return false;
            }
        };
        state.shared = None;
        recorded.is_ok()
    }
}

/// The description a copy of `source` at `stage` is made with, by which a run finds the copy
/// whose CopySnapshot answer was lost.
pub(super) fn copy_description(plan: &crate::Plan, stage: Stage, source: &str) -> String {
    format!("{} ({stage} copy of {source})", plan.description)
}
