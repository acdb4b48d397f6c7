//! Collection on in-memory doubles: the fake cloud, the memory store and block source.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use forensnap_acquire::memory::MemorySource;
use forensnap_acquire::{BlockPage, FetchPolicy, FetchedBlock, SourceError};
use forensnap_core::layout::BLOCK_SIZE;
use forensnap_core::{Action, Event, Outcome};
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
            uploads: 2,
            part_bytes: 5 << 20,
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
    run_scope(cloud, bucket, source, &Scope::Whole).await
}

fn signer() -> forensnap_core::seal::MemorySigner {
    forensnap_core::seal::MemorySigner::from_seed(3, "arn:aws:kms:us-east-1:123456789012:key/sign")
}

/// What `verify_checkpoints` finds wrong with the case's stored events and checkpoints.
fn sealed_findings(bucket: &Bucket, signer: &forensnap_core::seal::MemorySigner) -> Vec<String> {
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
    forensnap_core::seal::verify_checkpoints(&case, &events, &checkpoints, signer.public_key_der())
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

mod recorded_objects {
    use forensnap_core::details::{ConsoleRecorded, InstanceRecorded, StoredObject, Subject};
    use forensnap_core::{Actor, CaseId, ChainHead, EventDraft};
    use time::OffsetDateTime;

    use super::*;
    use crate::recorded_object;

    fn subject(instance: &str) -> Subject {
        Subject {
            instance: instance.into(),
            member_account: "111122223333".into(),
        }
    }

    fn stored(key: &str, sha: char) -> StoredObject {
        StoredObject {
            key: key.into(),
            version_id: Some("v1".into()),
            sha256: sha.to_string().repeat(64),
            size: 42,
            adopted: false,
            unstored_sha256: None,
        }
    }

    fn chain(drafts: Vec<EventDraft>) -> Vec<Event> {
        let case = CaseId::parse("IR-1").expect("case");
        let actor = Actor {
            arn: "a".into(),
            operator: "b".into(),
        };
        let mut head = ChainHead::empty();
        drafts
            .into_iter()
            .map(|d| {
                let e = Event::next(d, &case, &head, &actor, None, OffsetDateTime::UNIX_EPOCH);
                head = e.head();
                e
            })
            .collect()
    }

    #[test]
    fn the_small_items_hash_comes_from_the_event_that_stored_it() {
        let key = "cases/IR-1/evidence/i-1-console-output/data/console-output.txt";
        let events = chain(vec![
            EventDraft::new(ConsoleRecorded {
                stored: Some(stored(key, 'b')),
            })
            .about(&subject("i-2")),
            EventDraft::new(ConsoleRecorded { stored: None })
                .about(&subject("i-1"))
                .failed("AccessDenied"),
            EventDraft::new(ConsoleRecorded {
                stored: Some(stored(key, 'a')),
            })
            .about(&subject("i-1")),
        ]);
        let found =
            recorded_object(&events, &subject("i-1"), ItemKind::ConsoleOutput, key).expect("found");
        assert_eq!(found.sha256, "a".repeat(64));
        assert_eq!(found.size, 42);
    }

    #[test]
    fn an_item_no_event_stored_or_stored_elsewhere_is_named() {
        let key = "cases/IR-1/evidence/i-1-instance-record/data/describe-instances.json";
        let none = recorded_object(&[], &subject("i-1"), ItemKind::InstanceRecord, key)
            .expect_err("nothing recorded");
        assert!(
            none.contains("instance-record of i-1") && none.contains("run the collection again"),
            "{none}"
        );
        let elsewhere = chain(vec![
            EventDraft::new(InstanceRecorded {
                stored: Some(stored("cases/IR-1/elsewhere.json", 'c')),
                ..Default::default()
            })
            .about(&subject("i-1")),
        ]);
        let err = recorded_object(&elsewhere, &subject("i-1"), ItemKind::InstanceRecord, key)
            .expect_err("wrong key");
        assert!(
            err.contains("cases/IR-1/elsewhere.json") && err.contains("investigate"),
            "{err}"
        );
    }
}

/// The items `forensnap verify` finds stored without the events that record them.
async fn event_findings(bucket: &Bucket) -> Vec<(String, String)> {
    let case = forensnap_core::CaseId::parse("IR-1").expect("case");
    let layout = CaseLayout::new("", &case);
    let report = forensnap_verify::verify(
        bucket,
        &case,
        &layout,
        signer().public_key_der(),
        None,
        forensnap_verify::quiet(),
    )
    .await
    .expect("verify runs");
    report
        .rows
        .into_iter()
        .filter(|r| r.check == "custody events" && !r.ok)
        .map(|r| (r.subject, r.detail))
        .collect()
}

#[tokio::test]
async fn a_run_killed_before_an_items_event_records_it_on_the_next_run_once() {
    // Killed as it writes the first acquisition.completed (the completion marker is stored), or
    // the first evidence.sealed (the bag is sealed and signed): the next run finds the work
    // done and must still leave the chain an uninterrupted run leaves, no event missing or
    // doubled.
    for action in [
        Action::AcquisitionCompleted.as_str(),
        Action::EvidenceSealed.as_str(),
    ] {
        let (cloud, bucket, source) = (cloud(), Bucket::default(), source());
        let event = format!("\"action\":\"{action}\"");
        let (dying, died) = bucket.dying_when(move |key, bytes| {
            key.contains("/custody/events/") && String::from_utf8_lossy(bytes).contains(&event)
        });
        let (member, forensic, actor) = accounts(&cloud);
        let plan = plan();
        let custody = Custody::open(dying.clone(), "", &plan.case, actor, None)
            .await
            .expect("open log");
        let (acquire, seal) = (acquire_plan(), signer());
        let killed = collect(
            &plan, &acquire, &member, &forensic, &custody, &dying, &source, &seal, &Quiet,
        );
        tokio::select! {
            done = killed => panic!("{action}: the run ended before it was killed: {:?}", done.map(|_| ())),
            () = died.notified() => {}
        }
        // Verification names the item the chain does not record.
        let unrecorded = event_findings(&bucket).await;
        assert!(
            unrecorded.iter().any(|(_, detail)| detail.contains(action)),
            "{action}: verify names the item: {unrecorded:?}"
        );
        let (result, events) = run(&cloud, &bucket, &source).await;
        result.unwrap_or_else(|e| panic!("{action}: the next run: {e}"));
        assert_eq!(
            event_findings(&bucket).await,
            Vec::<(String, String)>::new(),
            "{action}: after the next run every item is recorded"
        );
        assert_eq!(
            (
                count(&events, Action::AcquisitionCompleted),
                count(&events, Action::EvidenceSealed)
            ),
            (3, 5),
            "{action}: every item's events, once"
        );
        assert_eq!(
            sealed_findings(&bucket, &signer()),
            Vec::<String>::new(),
            "{action}: the chain verifies"
        );
    }
}

async fn run_scope(
    cloud: &Shared,
    bucket: &Bucket,
    source: &Snapshots,
    scope: &Scope,
) -> (Result<Collected, CollectError>, Vec<Event>) {
    run_with(cloud, bucket, source, scope, &crate::NoMemory).await
}

async fn run_with<W: MemoryStep>(
    cloud: &Shared,
    bucket: &Bucket,
    source: &Snapshots,
    scope: &Scope,
    memory: &W,
) -> (Result<Collected, CollectError>, Vec<Event>) {
    let (member, forensic, actor) = accounts(cloud);
    let plan = plan();
    let custody = Custody::open(bucket.clone(), "", &plan.case, actor, None)
        .await
        .expect("open log");
    let result = collect_scope(
        &plan,
        &acquire_plan(),
        &member,
        &forensic,
        &custody,
        bucket,
        source,
        &signer(),
        &Quiet,
        scope,
        None::<(&crate::TrailPlan, &forensnap_ports::NoTrail)>,
        memory,
    )
    .await;
    (result, custody.events().await)
}

#[tokio::test]
async fn a_case_split_into_its_preparation_and_one_run_per_volume_ends_as_one_whole_run() {
    let (cloud, bucket, source) = (cloud(), Bucket::default(), source());
    // A volume run before the preparation is refused, naming what to do.
    let (early, _) = run_scope(&cloud, &bucket, &source, &Scope::Volume("vol-a".into())).await;
    let early = early.expect_err("no preservation yet");
    assert!(
        early.to_string().contains("no completed preservation"),
        "{early}"
    );

    let (prepared, events) = run_scope(&cloud, &bucket, &source, &Scope::Prepare).await;
    let prepared = prepared.expect("prepared");
    assert_eq!(prepared.evidence.len(), 2, "the small items only");
    assert_eq!(prepared.preserved.volumes.len(), 3);
    assert_eq!(count(&events, Action::AcquisitionStarted), 0);
    assert_eq!(count(&events, Action::CollectionCompleted), 0);
    let assumed = count(&events, Action::RoleAssumed);

    // Three volume runs at once, as three daemons would: one chain, no member call.
    let scopes = ["vol-a", "vol-f", "vol-g"].map(|v| Scope::Volume(v.into()));
    let (a, f, g) = tokio::join!(
        run_scope(&cloud, &bucket, &source, &scopes[0]),
        run_scope(&cloud, &bucket, &source, &scopes[1]),
        run_scope(&cloud, &bucket, &source, &scopes[2])
    );
    for (result, _) in [&a, &f, &g] {
        let collected = result.as_ref().expect("volume");
        assert_eq!(collected.evidence.len(), 1);
    }
    let (unknown, _) = run_scope(&cloud, &bucket, &source, &Scope::Volume("vol-zz".into())).await;
    assert!(
        unknown
            .expect_err("unknown volume")
            .to_string()
            .contains("vol-zz")
    );

    // The whole run completes the case and reads nothing again.
    let gets = source.pattern.gets.load(Ordering::SeqCst);
    let (whole, events) = run_scope(&cloud, &bucket, &source, &Scope::Whole).await;
    let whole = whole.expect("completed");
    assert_eq!(
        source.pattern.gets.load(Ordering::SeqCst),
        gets,
        "nothing read again"
    );
    assert_eq!(whole.evidence.len(), 5);
    assert_eq!(count(&events, Action::AcquisitionCompleted), 3);
    assert_eq!(count(&events, Action::EvidenceSealed), 5);
    assert_eq!(
        count(&events, Action::RoleAssumed),
        assumed + 1,
        "the volume runs assumed nothing"
    );
    assert_eq!(sealed_findings(&bucket, &signer()), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn memory_is_captured_before_the_snapshots_and_a_failed_capture_leaves_the_disks_collected() {
    use crate::memory::tests::{Host, ScriptedSsm, plan_for};
    let position = |events: &[Event], action: Action| {
        events
            .iter()
            .position(|e| e.action == action.as_str())
            .unwrap_or_else(|| panic!("{action:?} recorded"))
    };
    let memory_plan = plan_for(&plan().instance_id);

    let (cloud, bucket, source, transfer) =
        (cloud(), Bucket::default(), source(), MemoryStore::new());
    let ssm = ScriptedSsm::new(Host::Normal, &bucket, &transfer);
    let job = MemoryJob {
        plan: &memory_plan,
        ssm: &ssm,
        transfer: &transfer,
    };
    let (result, events) = run_with(&cloud, &bucket, &source, &Scope::Whole, &job).await;
    let collected = result.expect("collected");
    let memory = collected
        .evidence
        .iter()
        .find(|i| i.kind == ItemKind::Memory)
        .expect("a memory item");
    assert_eq!(memory.host_sha256, memory.image_sha256);
    assert!(memory.host_sha256.is_some());
    assert_eq!(collected.evidence.len(), 6);
    assert!(
        position(&events, Action::InstanceRecorded)
            < position(&events, Action::MemoryCaptureRequested)
    );
    assert!(
        position(&events, Action::MemoryCaptured) < position(&events, Action::SnapshotsRequested)
    );
    assert_eq!(sealed_findings(&bucket, &signer()), Vec::<String>::new());

    // An agent that cannot be reached: named, and the disks are collected all the same.
    let (cloud, bucket, source, transfer) = (
        self::cloud(),
        Bucket::default(),
        self::source(),
        MemoryStore::new(),
    );
    let ssm = ScriptedSsm::new(Host::Unreachable, &bucket, &transfer);
    let job = MemoryJob {
        plan: &memory_plan,
        ssm: &ssm,
        transfer: &transfer,
    };
    let (result, events) = run_with(&cloud, &bucket, &source, &Scope::Whole, &job).await;
    let err = result.expect_err("memory failed");
    let text = err.to_string();
    assert!(
        text.contains("1 of 6") && text.contains("reach the SSM agent") && text.contains("i-1"),
        "{text}"
    );
    assert_eq!(
        count(&events, Action::AcquisitionCompleted),
        3,
        "every volume acquired"
    );
    assert_eq!(
        count(&events, Action::EvidenceSealed),
        5,
        "every other item sealed"
    );
    assert_eq!(count(&events, Action::CollectionFailed), 1);
}
