//! What earlier runs of a case already did for one instance, read back from its custody events.
//!
//! The custody log is the only record forensnap keeps: a second run folds the case's events into
//! a [`CaseState`] and continues from there, so it never snapshots twice and never forgets an
//! intermediate copy it must delete or a share it must remove.

use std::collections::BTreeMap;

use forensnap_core::{Action, Event, Outcome};
use serde_json::Value;

/// Stage names of a volume's snapshots.
pub mod stage {
    /// The member-account snapshot of the volume (kept as evidence).
    pub const ORIGINAL: &str = "original";
    /// The member-account copy re-encrypted with the forensic key (deleted afterwards).
    pub const INTERMEDIATE: &str = "intermediate";
    /// The forensic-account copy (the evidence snapshot).
    pub const FORENSIC: &str = "forensic";
}

/// One volume's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeState {
    /// Device name on the instance.
    pub device: String,
    /// Snapshot id per stage.
    pub snapshots: BTreeMap<String, String>,
    /// Stages whose snapshot completed.
    pub completed: BTreeMap<String, String>,
    /// Copies requested but not answered (stage -> source snapshot), to adopt on resume.
    pub copy_requested: BTreeMap<String, String>,
    /// Snapshot currently shared with the forensic account.
    pub shared: Option<String>,
    /// Intermediate copy deleted.
    pub intermediate_deleted: bool,
}

impl VolumeState {
    /// Snapshot of a stage, if made.
    pub fn snapshot(&self, stage: &str) -> Option<&str> {
        self.snapshots.get(stage).map(String::as_str)
    }
    /// Whether a stage's snapshot completed.
    pub fn is_complete(&self, stage: &str) -> bool {
        self.completed.contains_key(stage)
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

fn text<'a>(details: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    details.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl CaseState {
    /// Fold the events of `account`/`instance_id` (other instances of the case are skipped).
    pub fn from_events(events: &[Event], account: &str, instance_id: &str) -> CaseState {
        let mut state = CaseState::default();
        for event in events {
            let d = &event.details;
            if text(d, "instance") != instance_id || text(d, "member_account") != account {
                continue;
            }
            let volume_id = text(d, "volume_id").to_string();
            let stage = text(d, "stage").to_string();
            let snapshot_id = text(d, "snapshot_id").to_string();
            if event.outcome == Outcome::Failed {
                // A snapshot that ended in error (or vanished) is made anew by the next run.
                if event.kind() == Some(Action::SnapshotCompleted)
                    && matches!(text(d, "final_state"), "error" | "gone")
                {
                    let volume = state.volumes.entry(volume_id).or_default();
                    if volume.snapshots.get(&stage) == Some(&snapshot_id) {
                        volume.snapshots.remove(&stage);
                        volume.completed.remove(&stage);
                    }
                }
                continue;
            }
            let Some(action) = event.kind() else { continue };
            match action {
                Action::CollectionStarted => state.runs += 1,
                Action::InstanceRecorded => state.instance_recorded = true,
                Action::ConsoleRecorded => state.console_recorded = true,
                Action::SnapshotsRequested => {
                    state.snapshots_requested = Some(text(d, "description").to_string())
                }
                Action::SnapshotsCreated => {
                    state.snapshots_created = true;
                    for v in d
                        .get("volumes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(v) = v.as_object() else { continue };
                        let volume = state
                            .volumes
                            .entry(text(v, "volume_id").to_string())
                            .or_default();
                        volume.device = text(v, "device").to_string();
                        volume.snapshots.insert(
                            stage::ORIGINAL.to_string(),
                            text(v, "snapshot_id").to_string(),
                        );
                    }
                }
                Action::SnapshotCompleted => {
                    state
                        .volumes
                        .entry(volume_id)
                        .or_default()
                        .completed
                        .insert(stage, snapshot_id);
                }
                Action::CopyRequested => {
                    state
                        .volumes
                        .entry(volume_id)
                        .or_default()
                        .copy_requested
                        .insert(stage, text(d, "source").to_string());
                }
                Action::SnapshotCopied => {
                    let volume = state.volumes.entry(volume_id).or_default();
                    volume.copy_requested.remove(&stage);
                    volume.snapshots.insert(stage, snapshot_id);
                }
                Action::SnapshotShared => {
                    state.volumes.entry(volume_id).or_default().shared = Some(snapshot_id)
                }
                Action::SnapshotUnshared => {
                    state.volumes.entry(volume_id).or_default().shared = None
                }
                Action::SnapshotDeleted => {
                    state
                        .volumes
                        .entry(volume_id)
                        .or_default()
                        .intermediate_deleted = true
                }
                Action::PreservationCompleted => state.completed = true,
                _ => {}
            }
        }
        state
    }
}
