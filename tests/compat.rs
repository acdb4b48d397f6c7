//! Bags and custody objects keep their format: a case collected before the storage refactor
//! (by the `forensnap` of commit 7f4e8c8, `tests/fixtures/case-before-store/`, made by
//! `scripts/make-compat-fixture`, see `tests/fixtures/README.md`) still verifies offline with
//! the current binary, tampering with it is still caught and named, and the current code reads
//! its custody events and checkpoints, re-serialises them byte for byte and finds every object
//! where its case layout says it is.
//!
//! No local world is needed: the fixture is a downloaded case folder, as `aws s3 sync` makes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use forensnap_core::seal::{Checkpoint, PUBLIC_KEY_PATH, SIGNATURE_SUFFIX};
use forensnap_core::{CaseId, CaseLayout, Event};
use forensnap_tests::*;

const CASE: &str = "IR-COMPAT-1";
/// The evidence items the old collect made (instance i-63488dbcfecdf77fe, volume
/// vol-cc3d818e67bbf08a4), as its `collect --output json` named them.
const VOLUME: &str = "vol-cc3d818e67bbf08a4";
const ITEMS: [&str; 3] = [
    "i-63488dbcfecdf77fe-console-output",
    "i-63488dbcfecdf77fe-instance-record",
    VOLUME,
];
/// The volume's full-image SHA-256 as the old collect reported it: 1 GiB, data in the 512 KiB
/// blocks 2, 3 and 4 only.
const IMAGE_SHA256: &str = "99485e2cc524ac090118bc0b71005ee960fa15bd66ce3d36cae64b936e321f87";
/// What the old collect reported: 24 custody events, 1 checkpoint, this chain head.
const EVENTS: usize = 24;
const CHECKPOINTS: usize = 1;
const HEAD_SHA256: &str = "17fa375ccbfc05f8141d1709e374de9c67a286e10a37d2f32eeae5946ff53e10";

fn fixture() -> PathBuf {
    // Where cargo runs the test, not where it was compiled: a shared target directory hands one
    // clone's test binary to another.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let dir = manifest.join("fixtures/case-before-store");
    assert!(
        dir.join("custody").is_dir(),
        "{} is missing: it is checked in (scripts/make-compat-fixture made it)",
        dir.display()
    );
    dir
}

fn case() -> CaseId {
    CaseId::parse(CASE).expect("case id")
}

fn verify_offline(dir: &Path, extra: &[&str]) -> Run {
    let dir = dir.display().to_string();
    let mut args = vec![
        "verify",
        "--offline",
        dir.as_str(),
        "--case",
        CASE,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    forensnap(&args)
}

/// The rows of a verify run's JSON report, as (check, subject, ok, detail).
fn rows(run: &Run) -> Vec<(String, String, bool, String)> {
    run.json()["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in the report: {}", run.stdout))
        .iter()
        .map(|r| {
            (
                r["check"].as_str().expect("check").to_string(),
                r["subject"].as_str().expect("subject").to_string(),
                r["ok"].as_bool().expect("ok"),
                r["detail"].as_str().expect("detail").to_string(),
            )
        })
        .collect()
}

fn read(dir: &Path, key: &str) -> Vec<u8> {
    std::fs::read(dir.join(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn a_case_collected_before_the_store_refactor_verifies_offline_with_every_check_passing() {
    let dir = fixture();
    // Default: the key stored with the case; then the key as the volume's bag stores it.
    let bag_key = dir
        .join("evidence")
        .join(VOLUME)
        .join(PUBLIC_KEY_PATH)
        .display()
        .to_string();
    for extra in [vec![], vec!["--public-key", bag_key.as_str()]] {
        let run = verify_offline(&dir, &extra);
        assert!(
            run.ok,
            "verify {extra:?} of the old case failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        let report = run.json();
        assert_eq!(report["case"], CASE);
        assert_eq!(report["events"], EVENTS, "{report:#}");
        assert_eq!(report["checkpoints"], CHECKPOINTS, "{report:#}");
        assert_eq!(report["items"], ITEMS.len(), "{report:#}");
        assert_eq!(report["objects_locked"], 0, "offline: no Object Lock");
        let rows = rows(&run);
        let failed: Vec<_> = rows.iter().filter(|r| !r.2).collect();
        assert!(failed.is_empty(), "rows that fail: {failed:#?}");
        // Every check ran, not only "no failure": the chain up to the recorded head, the
        // checkpoints, and for each item its signature, its seal, its tag files and its payload.
        let has = |check: &str, subject: &str, detail: &str| {
            rows.iter()
                .any(|(c, s, ok, d)| *ok && c == check && s == subject && d.contains(detail))
        };
        assert!(
            has(
                "custody chain",
                &format!("{EVENTS} events"),
                &format!("head seq {EVENTS} sha256 {HEAD_SHA256}")
            ),
            "{rows:#?}"
        );
        assert!(
            has(
                "checkpoints",
                &format!("{CHECKPOINTS} checkpoints"),
                "every event is covered"
            ),
            "{rows:#?}"
        );
        for id in ITEMS {
            for (check, what) in [
                ("signature", "tagmanifest-sha256.txt"),
                ("sealed", "tagmanifest-sha256.txt"),
                ("bag", "tag files"),
            ] {
                assert!(
                    has(check, &format!("{id} {what}"), ""),
                    "{check} {id}: {rows:#?}"
                );
            }
            assert!(
                has(
                    "custody events",
                    id,
                    "records the item's acquisition and seal"
                ),
                "custody events {id}: {rows:#?}"
            );
            let payload = if id == VOLUME { "image" } else { "data/" };
            assert!(
                has("payload", &format!("{id} {payload}"), ""),
                "payload {id}: {rows:#?}"
            );
        }
        assert!(
            has(
                "payload",
                &format!("{VOLUME} image"),
                &format!(
                    "image sha256 {IMAGE_SHA256} (1073741824 bytes, 3 stored blocks each matching the block map)"
                )
            ),
            "{rows:#?}"
        );
        assert_eq!(
            rows.len(),
            2 + 6 * ITEMS.len(),
            "one row per check: {rows:#?}"
        );
    }

    // The text table says the same.
    let text = forensnap(&[
        "verify",
        "--offline",
        &dir.display().to_string(),
        "--case",
        CASE,
    ]);
    assert!(text.ok, "{}\n{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains("RESULT: PASS") && !text.stdout.contains("FAIL"),
        "{}",
        text.stdout
    );

    // The case id is checked against the events: the old case is not some other case.
    let other = forensnap(&[
        "verify",
        "--offline",
        &dir.display().to_string(),
        "--case",
        "IR-COMPAT-2",
        "--output",
        "json",
    ]);
    assert!(!other.ok, "the old case verified as another case");
}

#[test]
fn tampering_with_the_old_case_is_still_caught_and_named() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let original = fixture();

    // One flipped byte in the volume's data object: the second stored block, EBS block 3.
    let flipped = tmp.path().join("flipped");
    copy_dir(&original, &flipped);
    let data = flipped
        .join("evidence")
        .join(VOLUME)
        .join("data/blocks.bin");
    let mut bytes = std::fs::read(&data).expect("blocks.bin");
    assert_eq!(bytes.len(), 3 * BLOCK, "three stored blocks");
    bytes[BLOCK + 100] ^= 1;
    std::fs::write(&data, bytes).expect("write");
    let run = verify_offline(&flipped, &[]);
    assert!(
        !run.ok,
        "a flipped byte in blocks.bin passed:\n{}",
        run.stdout
    );
    let failed: Vec<_> = rows(&run).into_iter().filter(|r| !r.2).collect();
    assert!(
        failed
            .iter()
            .any(|(check, subject, _, detail)| check == "payload"
                && subject.starts_with(VOLUME)
                && detail.contains("data/blocks.bin block 3")),
        "the flipped block is not named: {failed:#?}"
    );
    assert!(
        failed.iter().all(|(check, ..)| check == "payload"),
        "only the payload fails: {failed:#?}"
    );

    // An edited custody event breaks the chain at that event.
    let edited = tmp.path().join("edited");
    copy_dir(&original, &edited);
    let event = edited.join("custody/events/00000012.json");
    let text = std::fs::read_to_string(&event).expect("event");
    assert!(text.contains("Test Responder"), "{text}");
    std::fs::write(&event, text.replacen("Test Responder", "Someone Else", 1)).expect("write");
    let run = verify_offline(&edited, &[]);
    assert!(!run.ok, "an edited event passed:\n{}", run.stdout);
    let failed: Vec<_> = rows(&run).into_iter().filter(|r| !r.2).collect();
    assert!(
        failed
            .iter()
            .any(|(check, _, _, detail)| check == "custody chain" && detail.contains("event 12")),
        "the edited event is not named: {failed:#?}"
    );

    // A bag's own copy of the key (what auditors pass to openssl) that is not the trusted key,
    // even by one appended byte, is named on its own row.
    let rekeyed = tmp.path().join("rekeyed");
    copy_dir(&original, &rekeyed);
    let pem = rekeyed
        .join("evidence")
        .join(VOLUME)
        .join("signing-key.pem");
    let mut bytes = std::fs::read(&pem).expect("pem");
    bytes.push(b'\n');
    std::fs::write(&pem, bytes).expect("write");
    let run = verify_offline(&rekeyed, &[]);
    assert!(!run.ok, "a changed bag key passed:\n{}", run.stdout);
    let failed: Vec<_> = rows(&run).into_iter().filter(|r| !r.2).collect();
    assert!(
        failed.len() == 1
            && failed[0].0 == "bag key"
            && failed[0].1.starts_with(VOLUME)
            && failed[0].3.contains("is not the trusted key"),
        "{failed:#?}"
    );
}

#[test]
fn the_new_code_reads_the_old_custody_objects_byte_for_byte_where_its_layout_puts_them() {
    let dir = fixture();
    let case = case();
    let here = CaseLayout::downloaded();
    let in_s3 = CaseLayout::new("", &case);
    let present = relative_files(&dir);

    // Events: at the keys the layout names, parsed (unknown fields are refused), chained, each
    // action known to this version, and each re-serialised to exactly its stored bytes (so the
    // chain hashes this version writes are the ones the old one wrote).
    let stored: Vec<(String, Vec<u8>)> = (1..=EVENTS as u64)
        .map(|seq| {
            let key = here.event(seq);
            (key.clone(), read(&dir, &key))
        })
        .collect();
    let events_present = present
        .iter()
        .filter(|k| k.starts_with(&here.events()))
        .count();
    assert_eq!(
        events_present, EVENTS,
        "no other object under custody/events/"
    );
    let (events, head) =
        forensnap_core::custody::verify_chain(&case, &stored).expect("the old chain verifies");
    assert_eq!(
        (head.seq, head.sha256.as_str()),
        (EVENTS as u64, HEAD_SHA256)
    );
    for ((key, bytes), event) in stored.iter().zip(&events) {
        assert!(
            event.kind().is_some(),
            "{key}: unknown action {:?}",
            event.action
        );
        assert_eq!(
            String::from_utf8_lossy(&event.to_bytes()),
            String::from_utf8_lossy(bytes),
            "{key} does not re-serialise to its stored bytes"
        );
        let again: Event = serde_json::from_slice(bytes).expect("parses");
        assert_eq!(&again, event);
        // Typed details: every event reads into this version's details type, and writing those
        // back (with the event's subject) gives exactly the stored object: the typed model
        // writes the format the old code wrote, field for field.
        let details = event
            .details()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .unwrap_or_else(|| panic!("{key}: unknown action"));
        let mut rewritten = details.to_map();
        if let Some(subject) = event.subject() {
            rewritten.insert("instance".into(), subject.instance.into());
            rewritten.insert("member_account".into(), subject.member_account.into());
        }
        assert_eq!(
            serde_json::Value::Object(rewritten),
            serde_json::Value::Object(event.details.clone()),
            "{key}: the typed details of {} do not write back as stored",
            event.action
        );
    }

    // Checkpoints: at the keys the layout names (the recorded key is the S3 one), with their
    // signature and the public key beside them, re-serialised byte for byte, sealing the head
    // and every item, each item's bag where the layout puts it and its tag manifest as sealed.
    assert!(present.contains(&here.checkpoints_public_key()));
    let mut last = None;
    for number in 1..=CHECKPOINTS as u64 {
        let key = here.checkpoint(number);
        assert!(
            present.contains(&format!("{key}{SIGNATURE_SUFFIX}")),
            "{key}: no signature"
        );
        let bytes = read(&dir, &key);
        let checkpoint = Checkpoint::from_bytes(&bytes).expect("the old checkpoint parses");
        assert_eq!(checkpoint.number, number);
        assert_eq!(checkpoint.case, CASE);
        assert_eq!(checkpoint.key, in_s3.checkpoint(number));
        assert_eq!(
            String::from_utf8_lossy(&checkpoint.to_bytes()),
            String::from_utf8_lossy(&bytes),
            "{key} does not re-serialise to its stored bytes"
        );
        last = Some(checkpoint);
    }
    let last = last.expect("a checkpoint");
    assert_eq!(
        (last.chain.seq, last.chain.sha256.as_str()),
        (EVENTS as u64, HEAD_SHA256)
    );
    let sealed: BTreeSet<&str> = last.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(sealed, ITEMS.into_iter().collect());
    for item in &last.items {
        assert_eq!(item.prefix, in_s3.item(&item.id).prefix());
        let bag = here.item(&item.id);
        let tag_manifest = read(&dir, &bag.file("tagmanifest-sha256.txt"));
        assert_eq!(
            sha256_hex(&tag_manifest),
            item.tagmanifest_sha256,
            "{}",
            item.id
        );
        for file in [
            "bagit.txt",
            "bag-info.txt",
            "manifest-sha256.txt",
            "VERIFY.md",
        ] {
            assert!(present.contains(&bag.file(file)), "{}: no {file}", item.id);
        }
        assert!(
            present.contains(&forensnap_core::keys::signature_of(
                &bag.file("tagmanifest-sha256.txt")
            )),
            "{}: no signature",
            item.id
        );
    }

    // The volume's resume state sits where this version looks for it (a resumed collect of an
    // old case finds its completion marker instead of acquiring again).
    let volume = here.item(VOLUME);
    assert!(
        present.contains(&volume.completion_marker()),
        "{present:#?}"
    );
    assert!(present.contains(&volume.part_checkpoint(1)), "{present:#?}");
    for file in [
        "data/blocks.bin",
        "data/blockmap.tsv",
        "data/image.sha256",
        "rebuild.sh",
    ] {
        assert!(present.contains(&volume.file(file)), "no {file}");
    }
    let image = String::from_utf8(read(&dir, &volume.file("data/image.sha256"))).expect("utf8");
    assert!(image.starts_with(IMAGE_SHA256), "{image}");
}
