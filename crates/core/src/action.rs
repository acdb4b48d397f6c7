//! What a custody event says was done: every action forensnap records, named once.
//!
//! An event stores its action as dotted text (`snapshot.shared`), the format auditors read; the
//! code writes and reads it only through [`Action`], so a name cannot be spelt two ways.

/// Every kind of custody event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// A collection request was taken from the queue for this case, or merged into it.
    RequestReceived,
    /// A collection run started.
    CollectionStarted,
    /// The evidence bucket passed its checks.
    BucketChecked,
    /// The member role was assumed.
    RoleAssumed,
    /// The DescribeInstances record was stored.
    InstanceRecorded,
    /// The console output was stored.
    ConsoleRecorded,
    /// CreateSnapshots is about to be called.
    SnapshotsRequested,
    /// CreateSnapshots answered.
    SnapshotsCreated,
    /// A snapshot (any stage) completed, or ended in error.
    SnapshotCompleted,
    /// CopySnapshot is about to be called.
    CopyRequested,
    /// CopySnapshot answered.
    SnapshotCopied,
    /// A snapshot was shared with the forensic account.
    SnapshotShared,
    /// A share was removed.
    SnapshotUnshared,
    /// An intermediate copy was deleted.
    SnapshotDeleted,
    /// Preservation finished: the evidence snapshots are in the forensic account.
    PreservationCompleted,
    /// A volume's acquisition started (or resumed).
    AcquisitionStarted,
    /// A volume's data, block map and hashes are stored.
    AcquisitionCompleted,
    /// An evidence item's bag was sealed (tag manifest written and signed).
    EvidenceSealed,
    /// The whole collection finished.
    CollectionCompleted,
    /// A collection run stopped on an error.
    CollectionFailed,
    /// An evidence item was exported and checked.
    EvidenceExported,
    /// The case was verified.
    CaseVerified,
    /// An open multipart upload of the case was ended (the leftovers of an abandoned run).
    UploadAborted,
    /// A custody report was generated and stored in the case.
    ReportGenerated,
    /// A CloudTrail events item's window and queries were fixed.
    TrailLookupStarted,
    /// A CloudTrail events item's pages were stored, complete.
    TrailEventsStored,
    /// A trail's log and digest files were copied and validated.
    TrailLogsStored,
    /// A memory capture's plan was stored and its command is about to be sent.
    MemoryCaptureRequested,
    /// SSM accepted a memory capture's command.
    MemoryCommandSent,
    /// A memory capture ended (its image stored, or why not).
    MemoryCaptured,
}

impl Action {
    /// Every action, in the order a collection meets them.
    pub const ALL: [Action; 30] = [
        Action::RequestReceived,
        Action::CollectionStarted,
        Action::BucketChecked,
        Action::RoleAssumed,
        Action::InstanceRecorded,
        Action::ConsoleRecorded,
        Action::SnapshotsRequested,
        Action::SnapshotsCreated,
        Action::SnapshotCompleted,
        Action::CopyRequested,
        Action::SnapshotCopied,
        Action::SnapshotShared,
        Action::SnapshotUnshared,
        Action::SnapshotDeleted,
        Action::PreservationCompleted,
        Action::AcquisitionStarted,
        Action::AcquisitionCompleted,
        Action::EvidenceSealed,
        Action::CollectionCompleted,
        Action::CollectionFailed,
        Action::EvidenceExported,
        Action::CaseVerified,
        Action::UploadAborted,
        Action::ReportGenerated,
        Action::TrailLookupStarted,
        Action::TrailEventsStored,
        Action::TrailLogsStored,
        Action::MemoryCaptureRequested,
        Action::MemoryCommandSent,
        Action::MemoryCaptured,
    ];

    /// The name stored in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RequestReceived => "request.received",
            Action::CollectionStarted => "collection.started",
            Action::BucketChecked => "bucket.checked",
            Action::RoleAssumed => "role.assumed",
            Action::InstanceRecorded => "instance.recorded",
            Action::ConsoleRecorded => "console.recorded",
            Action::SnapshotsRequested => "snapshots.requested",
            Action::SnapshotsCreated => "snapshots.created",
            Action::SnapshotCompleted => "snapshot.completed",
            Action::CopyRequested => "snapshot.copy-requested",
            Action::SnapshotCopied => "snapshot.copied",
            Action::SnapshotShared => "snapshot.shared",
            Action::SnapshotUnshared => "snapshot.unshared",
            Action::SnapshotDeleted => "snapshot.deleted",
            Action::PreservationCompleted => "preservation.completed",
            Action::AcquisitionStarted => "acquisition.started",
            Action::AcquisitionCompleted => "acquisition.completed",
            Action::EvidenceSealed => "evidence.sealed",
            Action::CollectionCompleted => "collection.completed",
            Action::CollectionFailed => "collection.failed",
            Action::EvidenceExported => "evidence.exported",
            Action::CaseVerified => "case.verified",
            Action::UploadAborted => "upload.aborted",
            Action::ReportGenerated => "report.generated",
            Action::TrailLookupStarted => "cloudtrail.lookup-started",
            Action::TrailEventsStored => "cloudtrail.events-stored",
            Action::TrailLogsStored => "cloudtrail.logs-stored",
            Action::MemoryCaptureRequested => "memory.capture-requested",
            Action::MemoryCommandSent => "memory.command-sent",
            Action::MemoryCaptured => "memory.captured",
        }
    }

    /// The action a stored name means; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_distinct_name_that_parses_back() {
        let names: std::collections::BTreeSet<&str> =
            Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("collection.unknown"), None);
    }
}
