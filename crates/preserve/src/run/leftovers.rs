//! What a case's runs left in the member account, read from the custody chain (and, for a copy
//! whose CopySnapshot answer was lost, found by its description): snapshots still shared with
//! the forensic account and intermediate copies not deleted. Listed for `forensnap leftovers`,
//! and ended on request, each end recorded like the run's own (`snapshot.unshared`,
//! `snapshot.deleted`). The member snapshots of the volumes are evidence and never leftovers.

use forensnap_custody::Custody;
use forensnap_ports::Ec2;
use forensnap_store::{EvidenceAudit, EvidenceWrite};

use super::Run;
use super::volume::copy_description;
use crate::error::PreserveError;
use crate::plan::{Plan, SilentProgress};
use crate::state::{CaseState, Stage};

/// One thing a case's runs left in the member account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MemberLeftover {
    /// A snapshot still shared with the forensic account.
    Share {
        /// The volume.
        volume_id: String,
        /// The shared snapshot.
        snapshot_id: String,
        /// Whether the chain names the share (`false`: a ModifySnapshotAttribute whose answer
        /// was lost, found by DescribeSnapshotAttribute).
        recorded: bool,
    },
    /// An intermediate copy (re-encrypted under the forensic key) not deleted.
    IntermediateCopy {
        /// The volume.
        volume_id: String,
        /// The copy.
        snapshot_id: String,
        /// Whether the chain names it (`false`: a CopySnapshot whose answer was lost, found by
        /// its description).
        recorded: bool,
    },
}

impl std::fmt::Display for MemberLeftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberLeftover::Share {
                volume_id,
                snapshot_id,
                recorded,
            } => write!(
                f,
                "{snapshot_id} (of {volume_id}) is shared with the forensic account{}",
                if *recorded {
                    ""
                } else {
                    " (a share whose answer was lost)"
                }
            ),
            MemberLeftover::IntermediateCopy {
                volume_id,
                snapshot_id,
                recorded,
            } => write!(
                f,
                "intermediate copy {snapshot_id} (of {volume_id}){} is not deleted",
                if *recorded {
                    ""
                } else {
                    ", made by a CopySnapshot whose answer was lost,"
                }
            ),
        }
    }
}

fn run<'a, M: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &'a Plan,
    member: &'a M,
    custody: &Custody<S>,
) -> Run<'a, M, M, S> {
    Run {
        plan,
        member,
        forensic: member,
        custody: custody.clone(),
        progress: &SilentProgress,
    }
}

/// What the case's runs for `plan`'s instance left in the member account.
pub async fn member_leftovers<M: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    custody: &Custody<S>,
) -> Result<Vec<MemberLeftover>, PreserveError> {
    let state = CaseState::from_events(
        &custody.events().await,
        &plan.member_account,
        &plan.instance_id,
    )?;
    let mut found = Vec::new();
    for (volume_id, volume) in &state.volumes {
        // The copies this volume's runs made and did not delete: recorded, or found by the
        // description of a copy whose answer was lost.
        let mut copies = Vec::new();
        if !volume.intermediate_deleted {
            if let Some(id) = volume.snapshot(Stage::Intermediate) {
                // A run may have deleted it and died before recording that.
                let exists = member
                    .describe_snapshot(id)
                    .await
                    .map_err(|e| {
                        PreserveError::step(
                            "look for an intermediate copy",
                            &plan.member_account,
                            id,
                            e,
                            "check the member role's ec2:DescribeSnapshots right, then run again",
                        )
                    })?
                    .value
                    .is_some();
                if exists {
                    copies.push((id.to_string(), true));
                }
            } else if let Some(source) = volume.copy_requested.get(&Stage::Intermediate) {
                let description = copy_description(plan, Stage::Intermediate, source);
                let lost = member.find_snapshots(&description).await.map_err(|e| {
                    PreserveError::step(
                        "look for an unrecorded intermediate copy",
                        &plan.member_account,
                        source,
                        e,
                        "check the member role's ec2:DescribeSnapshots right, then run again",
                    )
                })?;
                copies.extend(lost.into_iter().map(|s| (s.id, false)));
            }
        }
        // Shares first (they are removed before a copy is deleted): the one the chain
        // records, and any a lost answer left on the volume's snapshot or copies.
        if let Some(snapshot_id) = &volume.shared {
            found.push(MemberLeftover::Share {
                volume_id: volume_id.clone(),
                snapshot_id: snapshot_id.clone(),
                recorded: true,
            });
        }
        let candidates = volume
            .snapshot(Stage::Original)
            .map(str::to_string)
            .into_iter()
            .chain(copies.iter().map(|(id, _)| id.clone()))
            .filter(|id| volume.shared.as_deref() != Some(id.as_str()));
        for snapshot_id in candidates {
            let shared = match member.shared_with(&snapshot_id).await {
                Ok(accounts) => accounts.value,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    return Err(PreserveError::step(
                        "read a snapshot's shares",
                        &plan.member_account,
                        &snapshot_id,
                        e,
                        "check the member role's ec2:DescribeSnapshotAttribute right, then run again",
                    ));
                }
            };
            if shared.contains(&plan.forensic_account) {
                found.push(MemberLeftover::Share {
                    volume_id: volume_id.clone(),
                    snapshot_id,
                    recorded: false,
                });
            }
        }
        found.extend(copies.into_iter().map(|(snapshot_id, recorded)| {
            MemberLeftover::IntermediateCopy {
                volume_id: volume_id.clone(),
                snapshot_id,
                recorded,
            }
        }));
    }
    Ok(found)
}

/// End `leftovers` (from [`member_leftovers`]): remove each share, delete each intermediate
/// copy, each recorded in the chain. Stops at the first that fails, naming it.
pub async fn end_member_leftovers<M: Ec2, S: EvidenceWrite + EvidenceAudit>(
    plan: &Plan,
    member: &M,
    custody: &Custody<S>,
    leftovers: &[MemberLeftover],
) -> Result<usize, PreserveError> {
    let run = run(plan, member, custody);
    let mut ended = 0;
    for leftover in leftovers {
        match leftover {
            MemberLeftover::Share {
                volume_id,
                snapshot_id,
                ..
            } => {
                let mut state = crate::state::VolumeState {
                    shared: Some(snapshot_id.clone()),
                    ..Default::default()
                };
                if !run.unshare(volume_id, &mut state).await {
                    return Err(PreserveError::step(
                        "remove the share",
                        &plan.member_account,
                        snapshot_id,
                        "ModifySnapshotAttribute remove failed (see the custody log)",
                        format!(
                            "remove account {}'s createVolumePermission from {snapshot_id} by hand, or run again",
                            plan.forensic_account
                        ),
                    ));
                }
            }
            MemberLeftover::IntermediateCopy {
                volume_id,
                snapshot_id,
                ..
            } => run.delete_intermediate(volume_id, snapshot_id).await?,
        }
        ended += 1;
    }
    Ok(ended)
}
