//! What earlier runs of a case already did for one instance, read back from its custody events.
//!
//! The custody log is the only record forensnap keeps: a second run folds the case's events into
//! a [`CaseState`] and continues from there, so it never snapshots twice and never forgets an
//! intermediate copy it must delete or a share it must remove.

use std::collections::BTreeMap;

use forensnap_core::details::{Details, FinalState, Share};
use forensnap_core::{Event, Outcome};

pub use forensnap_core::Stage;

/// One volume's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeState {
    /// Device name on the instance.
    pub device: String,
    /// Snapshot id per stage.
    pub snapshots: BTreeMap<Stage, String>,
    /// Stages whose snapshot completed.
    pub completed: BTreeMap<Stage, String>,
    /// Copies requested but not answered (stage -> source snapshot), to adopt on resume.
    pub copy_requested: BTreeMap<Stage, String>,
    /// Snapshot currently shared with the forensic account.
    pub shared: Option<String>,
    /// Intermediate copy deleted.
    pub intermediate_deleted: bool,
}

impl VolumeState {
    /// Snapshot of a stage, if made.
    pub fn snapshot(&self, stage: Stage) -> Option<&str> {
        self.snapshots.get(&stage).map(String::as_str)
    }
    /// Whether a stage's snapshot completed.
    pub fn is_complete(&self, stage: Stage) -> bool {
        self.completed.contains_key(&stage)
    }
}

/// One instance's progress within a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseState {
    /// Runs started for this instance.
    pub runs: u32,
    /// The DescribeInstances record was stored.
    pub instance_recorded: bool,
    /// The console output was stored.
    pub console_recorded: bool,
    /// `snapshots.requested` seen (its description), so a lost CreateSnapshots answer is adopted.
    pub snapshots_requested: Option<String>,
    /// `snapshots.created` seen.
    pub snapshots_created: bool,
    /// Volumes by volume id.
    pub volumes: BTreeMap<String, VolumeState>,
    /// A run finished.
    pub completed: bool,
}

impl CaseState {
    /// Fold the events of `account`/`instance_id` (other instances of the case are skipped, and
    /// so are actions this version does not know). An event of this instance whose details do
    /// not read is an error: resuming past a step forensnap cannot read could repeat or skip it.
    pub fn from_events(
        events: &[Event],
        account: &str,
        instance_id: &str,
    ) -> Result<CaseState, forensnap_core::details::DetailsError> {
        let mut state = CaseState::default();
        for event in events {
            match event.subject() {
                Some(s) if s.instance == instance_id && s.member_account == account => {}
                _ => continue,
            }
            let Some(details) = event.details()? else {
                continue;
            };
            if event.outcome == Outcome::Failed {
                // A snapshot that ended in error (or vanished) is made anew by the next run.
                if let Details::SnapshotCompleted(d) = details
                    && matches!(d.final_state, Some(FinalState::Error | FinalState::Gone))
                {
                    let volume = state.volumes.entry(d.volume_id).or_default();
                    if volume.snapshots.get(&d.stage) == Some(&d.snapshot_id) {
                        volume.snapshots.remove(&d.stage);
                        volume.completed.remove(&d.stage);
                    }
                }
                continue;
            }
            match details {
                Details::CollectionStarted(_) => state.runs += 1,
                Details::InstanceRecorded(_) => state.instance_recorded = true,
                Details::ConsoleRecorded(_) => state.console_recorded = true,
                Details::SnapshotsRequested(d) => state.snapshots_requested = Some(d.description),
                Details::SnapshotsCreated(d) => {
                    state.snapshots_created = true;
                    for v in d.volumes {
                        let volume = state.volumes.entry(v.volume_id).or_default();
                        volume.device = v.device;
                        volume.snapshots.insert(Stage::Original, v.snapshot_id);
                    }
                }
                Details::SnapshotCompleted(d) => {
                    state
                        .volumes
                        .entry(d.volume_id)
                        .or_default()
                        .completed
                        .insert(d.stage, d.snapshot_id);
                }
                Details::CopyRequested(d) => {
                    state
                        .volumes
                        .entry(d.volume_id)
                        .or_default()
                        .copy_requested
                        .insert(d.stage, d.source);
                }
                Details::SnapshotCopied(d) => {
                    let volume = state.volumes.entry(d.volume_id).or_default();
                    volume.copy_requested.remove(&d.stage);
                    if let Some(id) = d.snapshot_id {
                        volume.snapshots.insert(d.stage, id);
                    }
                }
                Details::SnapshotShared(Share {
                    volume_id,
                    snapshot_id,
                    ..
                }) => state.volumes.entry(volume_id).or_default().shared = Some(snapshot_id),
                Details::SnapshotUnshared(d) => {
                    state.volumes.entry(d.volume_id).or_default().shared = None
                }
                Details::SnapshotDeleted(d) => {
                    let volume = state.volumes.entry(d.volume_id).or_default();
                    if volume.is_complete(Stage::Forensic) {
                        volume.intermediate_deleted = true;
                    } else {
                        // Deleted before the forensic copy was made from it (`forensnap
                        // leftovers --end` on an abandoned case): a later run copies again.
                        if volume.snapshot(Stage::Intermediate) == Some(d.snapshot_id.as_str()) {
                            volume.snapshots.remove(&Stage::Intermediate);
                            volume.completed.remove(&Stage::Intermediate);
                        }
                        volume.copy_requested.remove(&Stage::Intermediate);
                    }
                }
                Details::PreservationCompleted(_) => state.completed = true,
                _ => {}
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use forensnap_core::details::{Share, SnapshotDeleted, Subject};
    use forensnap_core::{Actor, CaseId, ChainHead, Details, EventDraft};
    use time::OffsetDateTime;

    use super::*;

    fn event(draft: EventDraft, head: &ChainHead) -> Event {
        let actor = Actor {
            arn: "a".into(),
            operator: "b".into(),
        };
        let case = CaseId::parse("IR-1").expect("case");
        Event::next(draft, &case, head, &actor, None, OffsetDateTime::UNIX_EPOCH)
    }

    fn about(instance: &str) -> Subject {
        Subject {
            instance: instance.into(),
            member_account: "111122223333".into(),
        }
    }

    fn share(snapshot_id: &str) -> Details {
        Details::SnapshotShared(Share {
            volume_id: "vol-1".into(),
            snapshot_id: snapshot_id.into(),
            with: "999988887777".into(),
            already_gone: false,
        })
    }

    #[test]
    fn only_the_instances_own_events_are_folded() {
        let head = ChainHead::empty();
        let mine = event(EventDraft::new(share("snap-1")).about(&about("i-1")), &head);
        let other = event(
            EventDraft::new(share("snap-2")).about(&about("i-2")),
            &mine.head(),
        );
        let forensic = event(
            EventDraft::new(Details::SnapshotCompleted(
                forensnap_core::details::SnapshotCompleted {
                    volume_id: "vol-1".into(),
                    stage: Stage::Forensic,
                    snapshot_id: "snap-4".into(),
                    final_state: None,
                    completed: None,
                },
            ))
            .about(&about("i-1")),
            &other.head(),
        );
        let deleted = event(
            EventDraft::new(SnapshotDeleted {
                volume_id: "vol-1".into(),
                stage: Stage::Intermediate,
                snapshot_id: "snap-3".into(),
                already_gone: true,
            })
            .about(&about("i-1")),
            &forensic.head(),
        );
        let state =
            CaseState::from_events(&[mine, other, forensic, deleted], "111122223333", "i-1")
                .expect("reads");
        let volume = &state.volumes["vol-1"];
        assert_eq!(volume.shared.as_deref(), Some("snap-1"));
        assert!(volume.intermediate_deleted);
    }

    #[test]
    fn an_event_of_the_instance_whose_details_do_not_read_stops_the_fold() {
        let mut broken = event(
            EventDraft::new(share("snap-1")).about(&about("i-1")),
            &ChainHead::empty(),
        );
        broken.details.remove("snapshot_id");
        let err = CaseState::from_events(&[broken], "111122223333", "i-1").expect_err("refused");
        assert_eq!(err.action, forensnap_core::Action::SnapshotShared);
        assert!(err.to_string().contains("snapshot_id"), "{err}");
    }

    #[test]
    fn an_intermediate_copy_deleted_before_the_forensic_copy_is_made_again_later() {
        let head = ChainHead::empty();
        let copied = event(
            EventDraft::new(Details::SnapshotCopied(
                forensnap_core::details::SnapshotCopied {
                    volume_id: "vol-1".into(),
                    stage: Stage::Intermediate,
                    source: "snap-1".into(),
                    kms_key_id: None,
                    snapshot_id: Some("snap-2".into()),
                    tags: None,
                    adopted: false,
                },
            ))
            .about(&about("i-1")),
            &head,
        );
        let deleted = event(
            EventDraft::new(SnapshotDeleted {
                volume_id: "vol-1".into(),
                stage: Stage::Intermediate,
                snapshot_id: "snap-2".into(),
                already_gone: false,
            })
            .about(&about("i-1")),
            &copied.head(),
        );
        let state =
            CaseState::from_events(&[copied, deleted], "111122223333", "i-1").expect("reads");
        let volume = &state.volumes["vol-1"];
        assert_eq!(volume.snapshot(Stage::Intermediate), None, "copied again");
        assert!(
            !volume.intermediate_deleted,
            "the new copy is deleted in turn"
        );
    }
}
