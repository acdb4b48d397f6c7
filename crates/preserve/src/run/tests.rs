//! The preservation run on the in-memory fake cloud and store.

use std::collections::BTreeMap;

use forensnap_core::{Action, Outcome};

use super::*;
use crate::fake::{Cloud, FORENSIC, FORENSIC_KEY, MEMBER, Shared, accounts, plan};
use crate::plan::SilentProgress;
use forensnap_ports::SnapState;
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
    let custody = Custody::open(store, "", &plan.case, actor, None)
        .await
        .expect("open log");
    let result = preserve(plan, &member, &forensic, &custody, &SilentProgress).await;
    let events = custody.events().await;
    (result, events, custody.store().clone())
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
async fn a_bucket_default_retention_shorter_than_configured_stops_the_run_before_any_member_call() {
    let cloud = cloud(true);
    let store = MemoryStore::new();
    store.set_bucket_lock(BucketLock {
        enabled: true,
        default_mode: Some("COMPLIANCE".into()),
        default_days: Some(7),
        versioning: Some("Enabled".into()),
    });
    let (result, events, _) = run(&cloud, store, &plan()).await;
    let err = result.expect_err("refused").to_string();
    assert!(
        err.contains("default COMPLIANCE retention is 7 days, shorter than the configured retention_days = 30")
            && err.contains("EvidenceRetentionDays"),
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

#[tokio::test]
async fn an_intermediate_copy_deleted_before_its_event_was_written_is_recorded_as_gone() {
    // The first run deletes an intermediate copy and loses the answer (as a run killed before
    // it records the deletion); the role may delete only tagged snapshots, so the second run's
    // DeleteSnapshot of the gone copy is refused, not "not found".
    let cloud = cloud(true);
    {
        let mut state = cloud.lock().expect("lock");
        state.lost_answers.insert("DeleteSnapshot");
        state.deny_untagged = true;
    }
    let (first, _, store) = run(&cloud, MemoryStore::new(), &plan()).await;
    let failed = first
        .expect_err("the lost answer fails the first run")
        .to_string();
    assert!(failed.contains("delete the intermediate copy"), "{failed}");
    let (second, events, _) = run(&cloud, store, &plan()).await;
    let preserved = second.expect("the second run finds the copy gone");
    assert_eq!(preserved.volumes.len(), 3);
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == Some(Action::SnapshotDeleted) && e.outcome == Outcome::Ok)
        .collect();
    assert_eq!(
        deleted.len(),
        2,
        "each intermediate copy recorded deleted once"
    );
    assert_eq!(
        deleted
            .iter()
            .filter(|e| e.details.get("already_gone") == Some(&serde_json::json!(true)))
            .count(),
        1,
        "the copy deleted by the first run is recorded as already gone"
    );
}

/// The instance.recorded event of a chain.
fn instance_recorded(events: &[forensnap_core::Event]) -> &forensnap_core::Event {
    events
        .iter()
        .find(|e| e.kind() == Some(Action::InstanceRecorded) && e.outcome == Outcome::Ok)
        .expect("instance.recorded")
}

#[tokio::test]
async fn a_record_stored_by_a_run_that_died_before_recording_it_is_adopted() {
    use forensnap_store::{EvidenceRead, EvidenceWrite};
    // What an uninterrupted run stores.
    let (first, events, whole) = run(&cloud(true), MemoryStore::new(), &plan()).await;
    first.expect("first run");
    let key = instance_recorded(&events).details["key"]
        .as_str()
        .expect("key")
        .to_string();
    let record = whole.get(&key).await.expect("get").expect("stored");

    for (stored, differs) in [
        (record.clone(), false),
        (b"{\"earlier\":true}".to_vec(), true),
    ] {
        // A run stored the record and died before its event: the key exists, the chain is empty.
        let store = MemoryStore::new();
        store
            .put_new(&key, stored.clone(), "application/json")
            .await
            .expect("earlier run's record");
        let (result, events, _) = run(&cloud(true), store, &plan()).await;
        result.expect("the run adopts the stored record and finishes");
        let details = &instance_recorded(&events).details;
        assert_eq!(details["adopted"], serde_json::json!(true));
        assert_eq!(
            details["sha256"].as_str(),
            Some(forensnap_core::custody::sha256_hex(&stored).as_str()),
            "the event names what is stored"
        );
        assert_eq!(
            details.get("unstored_sha256").and_then(|v| v.as_str()),
            differs
                .then(|| forensnap_core::custody::sha256_hex(&record))
                .as_deref(),
            "a differing capture of this run is named, not stored"
        );
    }
}

#[tokio::test]
async fn leftovers_in_the_member_account_are_found_ended_and_recorded() {
    use crate::run::{MemberLeftover, end_member_leftovers, member_leftovers};
    // A finished run, then a share whose answer was lost left on an original.
    let cloud = cloud(true);
    let (first, _, store) = run(&cloud, MemoryStore::new(), &plan()).await;
    first.expect("first run");
    let (member, _, actor) = accounts(&cloud);
    let custody = Custody::open(store, "", &plan().case, actor, None)
        .await
        .expect("custody");
    assert!(
        member_leftovers(&plan(), &member, &custody)
            .await
            .expect("list")
            .is_empty(),
        "a finished run leaves nothing"
    );
    let original = {
        let mut state = cloud.lock().expect("lock");
        let (id, snap) = state
            .snapshots
            .iter_mut()
            .find(|(_, s)| s.info.owner == MEMBER && s.info.volume_id == "vol-data")
            .expect("original of vol-data");
        snap.shared_with.insert(FORENSIC.into());
        id.clone()
    };
    let found = member_leftovers(&plan(), &member, &custody)
        .await
        .expect("list");
    assert_eq!(
        found,
        vec![MemberLeftover::Share {
            volume_id: "vol-data".into(),
            snapshot_id: original.clone(),
            recorded: false,
        }]
    );
    let ended = end_member_leftovers(&plan(), &member, &custody, &found)
        .await
        .expect("end");
    assert_eq!(ended, 1);
    assert!(
        cloud.lock().expect("lock").snapshots[&original]
            .shared_with
            .is_empty()
    );
    assert!(
        member_leftovers(&plan(), &member, &custody)
            .await
            .expect("list")
            .is_empty()
    );
    let unshared = custody
        .events()
        .await
        .iter()
        .filter(|e| e.kind() == Some(Action::SnapshotUnshared))
        .filter(|e| e.details["snapshot_id"] == original.as_str())
        .count();
    assert_eq!(unshared, 1, "the end is recorded");
}

#[tokio::test]
async fn an_intermediate_copy_left_by_a_failed_run_is_deleted_and_a_later_run_copies_again() {
    use crate::run::{MemberLeftover, end_member_leftovers, member_leftovers};
    let cloud = cloud(true);
    // The forensic copies fail for good: each re-encrypted volume's intermediate copy stays.
    cloud.lock().expect("lock").failing_in.insert(
        (FORENSIC.into(), "CopySnapshot"),
        "InvalidParameterValue".into(),
    );
    let (first, _, store) = run(&cloud, MemoryStore::new(), &plan()).await;
    assert!(first.is_err(), "the forensic copies failed");
    let (member, _, actor) = accounts(&cloud);
    let custody = Custody::open(store.clone(), "", &plan().case, actor, None)
        .await
        .expect("custody");
    let found = member_leftovers(&plan(), &member, &custody)
        .await
        .expect("list");
    let ended_copies: Vec<String> = found
        .iter()
        .map(|l| match l {
            MemberLeftover::IntermediateCopy {
                snapshot_id,
                recorded: true,
                ..
            } => snapshot_id.clone(),
            other => panic!("only recorded intermediate copies are left: {other:?}"),
        })
        .collect();
    assert_eq!(
        ended_copies.len(),
        2,
        "vol-root (aws/ebs) and vol-data (unencrypted)"
    );
    end_member_leftovers(&plan(), &member, &custody, &found)
        .await
        .expect("end");
    for id in &ended_copies {
        assert!(
            !cloud.lock().expect("lock").snapshots.contains_key(id),
            "{id} deleted"
        );
    }
    assert!(
        member_leftovers(&plan(), &member, &custody)
            .await
            .expect("list")
            .is_empty()
    );
    // The case resumed later: new intermediate copies, used, then deleted in turn.
    cloud.lock().expect("lock").failing_in.clear();
    let (second, events, _) = run(&cloud, store, &plan()).await;
    let preserved = second.expect("the later run finishes");
    for v in preserved
        .volumes
        .iter()
        .filter(|v| v.volume_id != "vol-logs")
    {
        let copy = v.intermediate_snapshot_id.as_ref().expect("a new copy");
        assert!(!ended_copies.contains(copy), "{copy} is a new copy");
        assert!(
            !cloud.lock().expect("lock").snapshots.contains_key(copy),
            "{copy} deleted"
        );
    }
    assert_eq!(
        count(&events, Action::SnapshotDeleted),
        4,
        "two ended, two after use"
    );
}
