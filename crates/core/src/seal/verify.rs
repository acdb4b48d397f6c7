//! Verification of a case's custody checkpoints against its stored events: [`verify_checkpoints`]
//! walks the checkpoints newest to oldest, checks every signature, link and chain position and
//! the events' own hash links, and reports every problem as a [`Finding`].

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

use super::events::{StoredEvent, check_events, read_events};
use super::signature::decode_public_key;
use super::{Checkpoint, SIGNATURE_SUFFIX, fingerprint, verify_signature};
use crate::CaseId;
use crate::custody::{GENESIS, sha256_hex};

/// One thing wrong with a case's checkpoints, named precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong: an S3 key, or the trusted public key.
    pub what: String,
    /// What is wrong with it, and what that means.
    pub problem: String,
}

impl Finding {
    pub(super) fn new(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Finding {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.problem)
    }
}

/// A stored checkpoint object as listed: its key, its bytes, and the bytes of its `.sig`
/// (`None` when the signature object is missing).
pub type CheckpointObject = (String, Vec<u8>, Option<Vec<u8>>);

/// A readable stored checkpoint.
struct ReadCheckpoint<'a> {
    key: &'a str,
    bytes: &'a [u8],
    signature: Option<&'a [u8]>,
    /// Why the signature does not check out (`None`: it verifies with the trusted key).
    unsigned: Option<String>,
    checkpoint: Checkpoint,
}

/// Verify a case's checkpoints against its events, walking newest to oldest like CloudTrail's
/// validator, and report every problem found rather than stopping at the first.
///
/// `events` are `(key, bytes)` of every stored event object, `checkpoints` are `(key, bytes,
/// signature bytes or None when the .sig is missing)`, both in key order; `public_key` is the
/// SPKI DER the auditor trusts (compare its [`fingerprint`] with `aws kms get-public-key`).
///
/// Reported: a checkpoint that is unreadable, unsigned or whose signature does not verify; one
/// whose `key` differs from where it was found (moved or copied) or of another case; missing
/// numbers (a deleted checkpoint); `previous` not matching the actual previous checkpoint's key,
/// SHA-256 or signature; a chain position that does not match the stored event of that seq
/// (edited event) or names an event no longer stored (deleted or truncated events), or goes
/// backwards; an evidence item dropped by a later checkpoint; `public_key_sha256` not the
/// trusted key's fingerprint. Events are checked too: unreadable, of another case, stored twice
/// or under another seq's key, missing from the middle, or not hashing to what the next event
/// links to (an edit of an event sealed only through the links). Last, every event after the
/// latest checkpoint whose signature verifies is reported as not covered by a signed
/// checkpoint.
pub fn verify_checkpoints(
    case: &CaseId,
    events: &[(String, Vec<u8>)],
    checkpoints: &[CheckpointObject],
    public_key: &[u8],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let trusted = fingerprint(public_key);
    if let Err(e) = decode_public_key(public_key) {
        findings.push(Finding::new(
            "the trusted public key",
            format!("{e}; no signature can be checked with it"),
        ));
    }

    let stored = read_events(case, events, &mut findings);
    let highest_event = stored.keys().next_back().copied().unwrap_or(0);

    let read = read_checkpoints(case, checkpoints, public_key, &mut findings);
    let newest = read.keys().next_back().copied().unwrap_or(0);
    // A checkpoint's folder, to name where a missing one should be.
    let folder = read
        .values()
        .next()
        .map(|c| folder_of(c.key).to_string())
        .unwrap_or_default();

    for (&number, current) in read.iter().rev() {
        check_checkpoint(
            case,
            current,
            read.get(&(number - 1)),
            &stored,
            highest_event,
            &trusted,
            &mut findings,
        );
        // The numbers missing below this one, as one run: a forged number far ahead must not
        // make the walk count through every number in between.
        let lower = read
            .range(..number)
            .next_back()
            .map_or(0, |(&lower, _)| lower);
        if number - lower > 1 {
            let (first, last) = (lower + 1, number - 1);
            let finding = if first == last {
                let key = current
                    .checkpoint
                    .previous
                    .as_ref()
                    .map_or_else(|| format!("{folder}{last:08}.json"), |p| p.key.clone());
                Finding::new(
                    key,
                    format!(
                        "checkpoint {last} of case {case} is missing (checkpoints up to \
                         {newest} exist): it was deleted"
                    ),
                )
            } else {
                Finding::new(
                    folder.clone(),
                    format!(
                        "checkpoints {first} to {last} of case {case} are missing (checkpoints \
                         up to {newest} exist): they were deleted"
                    ),
                )
            };
            findings.push(finding);
        }
    }

    check_events(&stored, &mut findings);

    // The newest checkpoint whose signature verifies: events after it are not sealed.
    let sealed = read
        .values()
        .filter(|c| c.unsigned.is_none())
        .max_by_key(|c| (c.checkpoint.chain.seq, c.checkpoint.number));
    let through = sealed.map_or(0, |c| c.checkpoint.chain.seq);
    for (seq, event) in stored.range(through.saturating_add(1)..) {
        let problem = match sealed {
            Some(c) => format!(
                "event {seq} is not covered by a signed checkpoint: the latest signed checkpoint, \
                 {} ({}), seals the chain through event {through}",
                c.checkpoint.number, c.key
            ),
            None => format!(
                "event {seq} is not covered by a signed checkpoint: case {case} has no checkpoint \
                 whose signature verifies with the trusted key"
            ),
        };
        findings.push(Finding::new(event.key, problem));
    }
    findings
}

/// Parse the stored checkpoints by number and check each signature; reports the unreadable and
/// the repeated (with their signature problems), keeps the others' for [`check_checkpoint`].
fn read_checkpoints<'a>(
    case: &CaseId,
    checkpoints: &'a [CheckpointObject],
    public_key: &[u8],
    findings: &mut Vec<Finding>,
) -> BTreeMap<u64, ReadCheckpoint<'a>> {
    let mut read: BTreeMap<u64, ReadCheckpoint<'a>> = BTreeMap::new();
    for (key, bytes, signature) in checkpoints {
        let unsigned = match signature {
            None => Some(format!(
                "its signature {key}{SIGNATURE_SUFFIX} is missing: the checkpoint is not sealed \
                 (the run stopped before signing it, or the signature was deleted)"
            )),
            Some(signature) => verify_signature(public_key, bytes, signature)
                .err()
                .map(|e| format!("its signature {key}{SIGNATURE_SUFFIX} does not check out: {e}")),
        };
        // Checkpoints that take no place in the walk get all their findings here.
        let mut set_aside = |problem: String| {
            findings.extend(unsigned.clone().map(|unsigned| Finding::new(key, unsigned)));
            findings.push(Finding::new(key, problem));
        };
        let checkpoint = match Checkpoint::from_bytes(bytes) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                set_aside(e.to_string());
                continue;
            }
        };
        let number = checkpoint.number;
        if number == 0 {
            set_aside("is checkpoint 0, but checkpoints are numbered from 1".to_string());
            continue;
        }
        if let Some(first) = read.get(&number) {
            set_aside(format!(
                "is a second checkpoint {number} of case {case} (the first is {}): a \
                     checkpoint was copied or forged",
                first.key
            ));
            continue;
        }
        read.insert(
            number,
            ReadCheckpoint {
                key,
                bytes,
                signature: signature.as_deref(),
                unsigned,
                checkpoint,
            },
        );
    }
    read
}

/// Everything about one checkpoint: signature (checked when read), location, case, key
/// fingerprint, chain position, link to the previous checkpoint and the items it carries over.
fn check_checkpoint(
    case: &CaseId,
    current: &ReadCheckpoint<'_>,
    previous: Option<&ReadCheckpoint<'_>>,
    stored: &BTreeMap<u64, StoredEvent<'_>>,
    highest_event: u64,
    trusted: &str,
    findings: &mut Vec<Finding>,
) {
    let key = current.key;
    let checkpoint = &current.checkpoint;
    let number = checkpoint.number;
    let mut report = |problem: String| findings.push(Finding::new(key, problem));

    if let Some(unsigned) = &current.unsigned {
        report(unsigned.clone());
    }

    if checkpoint.case != case.as_str() {
        report(format!(
            "is a checkpoint of case {}, stored among the checkpoints of case {case}",
            checkpoint.case
        ));
    }
    if checkpoint.key != key {
        report(format!(
            "says it is stored at {} but was found at {key}: it was moved or copied",
            checkpoint.key
        ));
    } else if !at_file(key, &format!("{number:08}.json")) {
        report(format!(
            "is checkpoint {number} but is not stored as {number:08}.json"
        ));
    }
    if checkpoint.public_key_sha256 != trusted {
        report(format!(
            "names signing key {} with public key SHA-256 {}, but the trusted public key's \
             SHA-256 is {trusted}: it was sealed with another key, or the wrong key is trusted",
            checkpoint.signing_key_arn, checkpoint.public_key_sha256
        ));
    }

    let chain = &checkpoint.chain;
    let seq = chain.seq;
    if seq == 0 {
        if chain.sha256 != GENESIS {
            report(format!(
                "seals an empty custody chain (event 0) but gives SHA-256 {} instead of {GENESIS}",
                chain.sha256
            ));
        }
    } else {
        match stored.get(&seq) {
            Some(event) if event.sha256 == chain.sha256 => {}
            Some(event) => report(format!(
                "seals the custody chain at event {seq} with SHA-256 {}, but the stored event \
                 {seq} ({}) hashes {}: event {seq} was edited or replaced after it was sealed",
                chain.sha256, event.key, event.sha256
            )),
            None if seq > highest_event => report(format!(
                "seals the custody chain through event {seq}, but the highest stored event is \
                 {highest_event}: events after {highest_event} were deleted (the chain was \
                 truncated)"
            )),
            None => report(format!(
                "seals the custody chain at event {seq}, but no event {seq} is stored: it was \
                 deleted"
            )),
        }
    }

    match (&checkpoint.previous, previous) {
        (None, _) if number == 1 => {}
        (Some(named), _) if number == 1 => report(format!(
            "is checkpoint 1 but names a previous checkpoint {}: earlier checkpoints were \
             deleted, or it was renumbered",
            named.key
        )),
        (None, _) => report(format!(
            "is checkpoint {number} but names no previous checkpoint: it was forged or renumbered"
        )),
        // The missing previous checkpoint is reported as a gap.
        (Some(_), None) => {}
        (Some(named), Some(actual)) => {
            let before = number - 1;
            if named.key != actual.key {
                report(format!(
                    "names {} as checkpoint {before}, but checkpoint {before} was found at {}",
                    named.key, actual.key
                ));
            }
            let actual_sha256 = sha256_hex(actual.bytes);
            if named.sha256 != actual_sha256 {
                report(format!(
                    "records checkpoint {before} as hashing {}, but {} hashes {actual_sha256}: \
                     checkpoint {before} was edited or replaced",
                    named.sha256, actual.key
                ));
            }
            if let Some(signature) = actual.signature {
                let actual_signature = base64::engine::general_purpose::STANDARD.encode(signature);
                if named.signature != actual_signature {
                    report(format!(
                        "records another signature of checkpoint {before} than \
                         {}{SIGNATURE_SUFFIX} holds: that signature was replaced",
                        actual.key
                    ));
                }
            }
            if seq < actual.checkpoint.chain.seq {
                report(format!(
                    "seals the custody chain at event {seq}, before checkpoint {before}'s event \
                     {}: the chain went backwards",
                    actual.checkpoint.chain.seq
                ));
            }
            for item in &actual.checkpoint.items {
                if !checkpoint.items.iter().any(|kept| kept.id == item.id) {
                    report(format!(
                        "drops evidence item {} ({}) that checkpoint {before} sealed: every \
                         checkpoint lists every item sealed so far",
                        item.id, item.prefix
                    ));
                }
            }
        }
    }
}

/// The key up to and including its last '/'.
pub(super) fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |slash| &key[..=slash])
}

/// Whether `key`'s last component is exactly `file`.
pub(super) fn at_file(key: &str, file: &str) -> bool {
    key.strip_suffix(file)
        .is_some_and(|folder| folder.is_empty() || folder.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::CaseLayout;
    use crate::custody::{Actor, ChainHead, Event, EventDraft};
    use crate::seal::memory::fixtures::{ARN, now, signer};
    use crate::seal::{
        CHECKPOINT_SCHEMA, ChainPosition, MemorySigner, PreviousCheckpoint, SealedItem, Signer as _,
    };

    struct Case {
        id: CaseId,
        events: Vec<(String, Vec<u8>)>,
        checkpoints: Vec<CheckpointObject>,
        signer: MemorySigner,
    }

    impl Case {
        fn findings(&self) -> Vec<Finding> {
            verify_checkpoints(
                &self.id,
                &self.events,
                &self.checkpoints,
                self.signer.public_key_der(),
            )
        }
    }

    fn append_events(case: &CaseId, events: &mut Vec<(String, Vec<u8>)>, count: u64) {
        let actor = Actor {
            arn: "arn:aws:iam::123456789012:role/forensnap".into(),
            operator: "Jane".into(),
        };
        let mut head = events
            .last()
            .map(|(_, bytes)| {
                let event: Event = serde_json::from_slice(bytes).expect("event");
                event.head()
            })
            .unwrap_or_else(ChainHead::empty);
        for _ in 0..count {
            let draft = EventDraft::new(crate::details::CollectionFailed {
                failed_items: Some(head.seq),
            })
            .after([format!("snap-{}", head.seq + 1)]);
            let event = Event::next(
                draft,
                case,
                &head,
                &actor,
                Some("test"),
                OffsetDateTime::UNIX_EPOCH,
            );
            head = event.head();
            events.push((
                CaseLayout::new("ev", case).event(event.seq),
                event.to_bytes(),
            ));
        }
    }

    /// Six events; checkpoint 1 seals events 1-2 and item a, 2 seals 1-4 and a, b, 3 seals 1-6
    /// and a, b, c.
    fn sealed_case() -> Case {
        let id = CaseId::parse("IR-1").expect("case");
        let signer = signer();
        let mut events = Vec::new();
        append_events(&id, &mut events, 6);
        let mut checkpoints: Vec<CheckpointObject> = Vec::new();
        for number in 1..=3u64 {
            let seq = number * 2;
            let (_, event_bytes) = &events[seq as usize - 1];
            let previous = checkpoints
                .last()
                .map(|(key, bytes, signature)| PreviousCheckpoint {
                    key: key.clone(),
                    sha256: sha256_hex(bytes),
                    signature: base64::engine::general_purpose::STANDARD
                        .encode(signature.as_deref().expect("signed")),
                });
            let key = CaseLayout::new("ev", &id).checkpoint(number);
            let checkpoint = Checkpoint {
                schema: CHECKPOINT_SCHEMA.into(),
                case: id.to_string(),
                number,
                time: "2026-11-23T20:35:48.360Z".into(),
                bucket: "forensic-evidence".into(),
                key: key.clone(),
                chain: ChainPosition {
                    seq,
                    sha256: sha256_hex(event_bytes),
                },
                previous,
                items: ["a", "b", "c"][..number as usize]
                    .iter()
                    .map(|item| SealedItem {
                        id: (*item).into(),
                        prefix: format!("ev/cases/IR-1/evidence/{item}/"),
                        tagmanifest_sha256: sha256_hex(item.as_bytes()),
                    })
                    .collect(),
                signing_key_arn: signer.key_id().into(),
                public_key_sha256: fingerprint(signer.public_key_der()),
            };
            let bytes = checkpoint.to_bytes();
            let signature = now(signer.sign(&bytes)).expect("signed");
            checkpoints.push((key, bytes, Some(signature)));
        }
        Case {
            id,
            events,
            checkpoints,
            signer,
        }
    }

    fn has(findings: &[Finding], what: &str, words: &[&str]) -> bool {
        findings
            .iter()
            .any(|f| f.what == what && words.iter().all(|w| f.problem.contains(w)))
    }

    fn key(number: u64) -> String {
        CaseLayout::new("ev", &CaseId::parse("IR-1").expect("case")).checkpoint(number)
    }

    #[test]
    fn an_intact_sealed_chain_has_no_findings() {
        let case = sealed_case();
        assert_eq!(case.findings(), Vec::new());
        assert_eq!(
            case.checkpoints[0].0,
            "ev/cases/IR-1/custody/checkpoints/00000001.json"
        );
    }

    #[test]
    fn an_edited_event_is_named() {
        // Event 4 is the one checkpoint 2 names.
        let mut case = sealed_case();
        let text = String::from_utf8(case.events[3].1.clone()).expect("utf8");
        case.events[3].1 = text.replace("snap-4", "snap-X").into_bytes();
        let findings = case.findings();
        assert!(
            has(&findings, &key(2), &["event 4", "edited"]),
            "{findings:#?}"
        );
        let event_4 = case.events[3].0.clone();
        assert!(
            has(&findings, &event_4, &["event 5", "edited"]),
            "{findings:#?}"
        );

        // Event 3 is sealed only through event 4's link.
        let mut case = sealed_case();
        let text = String::from_utf8(case.events[2].1.clone()).expect("utf8");
        case.events[2].1 = text.replace("snap-3", "snap-X").into_bytes();
        let findings = case.findings();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            has(
                &findings,
                &case.events[2].0,
                &["event 3 hashes", "event 3 was edited"]
            ),
            "{findings:#?}"
        );
    }

    #[test]
    fn deleted_events_are_named() {
        let mut case = sealed_case();
        case.events.pop();
        let findings = case.findings();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            has(
                &findings,
                &key(3),
                &["event 6", "highest stored event is 5", "truncated"]
            ),
            "{findings:#?}"
        );

        let mut case = sealed_case();
        let removed = case.events.remove(1).0;
        let findings = case.findings();
        assert!(
            has(&findings, &removed, &["event 2 is missing", "deleted"]),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(1), &["no event 2 is stored"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_deleted_checkpoint_is_a_gap() {
        let mut case = sealed_case();
        case.checkpoints.remove(1);
        let findings = case.findings();
        assert_eq!(
            findings,
            vec![Finding {
                what: key(2),
                problem: "checkpoint 2 of case IR-1 is missing (checkpoints up to 3 exist): it \
                          was deleted"
                    .into()
            }]
        );
    }

    #[test]
    fn numbers_far_ahead_are_one_run_not_a_count() {
        let mut case = sealed_case();
        let forged = String::from_utf8(case.checkpoints[2].1.clone())
            .expect("utf8")
            .replace("\"number\": 3", "\"number\": 1000000000000");
        case.checkpoints
            .push((key(1_000_000_000_000), forged.into_bytes(), None));
        let mut event: Event = serde_json::from_slice(&case.events[5].1).expect("event");
        event.seq = u64::MAX;
        case.events.push((
            CaseLayout::new("ev", &case.id).event(u64::MAX),
            event.to_bytes(),
        ));
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &CaseLayout::new("ev", &case.id).checkpoints(),
                &["checkpoints 4 to 999999999999 of case IR-1 are missing"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(
                &findings,
                &case.events[0].0.replace("00000001.json", ""),
                &[&format!("custody events 7 to {} are missing", u64::MAX - 1)]
            ),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(1_000_000_000_000), &[".sig is missing"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_swapped_signature_is_named_twice() {
        let mut case = sealed_case();
        case.checkpoints[1].2 = case.checkpoints[2].2.clone();
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &key(2),
                &["00000002.json.sig does not check out", "does not verify"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(3), &["another signature of checkpoint 2"]),
            "{findings:#?}"
        );
        assert_eq!(findings.len(), 2, "{findings:#?}");

        let mut case = sealed_case();
        case.checkpoints[0].2 = None;
        let findings = case.findings();
        assert!(
            has(&findings, &key(1), &["00000001.json.sig is missing"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_moved_checkpoint_is_named() {
        let mut case = sealed_case();
        let moved = key(2).replace("00000002", "moved-00000002");
        case.checkpoints[1].0 = moved.clone();
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &moved,
                &[&format!("says it is stored at {}", key(2)), "moved"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(
                &findings,
                &key(3),
                &[&format!("names {} as checkpoint 2", key(2))]
            ),
            "{findings:#?}"
        );
    }

    #[test]
    fn an_edited_checkpoint_is_named() {
        let mut case = sealed_case();
        let text = String::from_utf8(case.checkpoints[1].1.clone()).expect("utf8");
        case.checkpoints[1].1 = text.replace("\"b\"", "\"z\"").into_bytes();
        let findings = case.findings();
        assert!(
            has(&findings, &key(2), &["does not verify"]),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(3), &["checkpoint 2 was edited"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_wrong_public_key_is_named() {
        let case = sealed_case();
        let other = MemorySigner::from_seed(9, ARN);
        let findings = verify_checkpoints(
            &case.id,
            &case.events,
            &case.checkpoints,
            other.public_key_der(),
        );
        for number in 1..=3 {
            assert!(
                has(&findings, &key(number), &["does not verify"]),
                "{findings:#?}"
            );
            assert!(
                has(
                    &findings,
                    &key(number),
                    &[&fingerprint(other.public_key_der()), "another key"]
                ),
                "{findings:#?}"
            );
        }
        // Nothing is sealed by a key that is not trusted.
        assert!(has(
            &findings,
            &case.events[0].0,
            &["not covered by a signed checkpoint"]
        ));

        let findings = verify_checkpoints(&case.id, &case.events, &case.checkpoints, b"junk");
        assert!(
            has(&findings, "the trusted public key", &["P-256"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn events_after_the_last_checkpoint_are_not_sealed() {
        let mut case = sealed_case();
        append_events(&case.id, &mut case.events, 2);
        let findings = case.findings();
        assert_eq!(findings.len(), 2, "{findings:#?}");
        for seq in [7, 8] {
            assert!(
                has(
                    &findings,
                    &case.events[seq - 1].0,
                    &[
                        &format!("event {seq} is not covered by a signed checkpoint"),
                        "through event 6"
                    ]
                ),
                "{findings:#?}"
            );
        }

        let mut case = sealed_case();
        case.checkpoints.clear();
        let findings = case.findings();
        assert_eq!(findings.len(), 6, "{findings:#?}");
    }
}
