//! The stored custody events as the checkpoint walk sees them: each parsed once, by seq, with the
//! unreadable, foreign, misplaced and repeated reported ([`read_events`]), then the chain's own
//! evidence checked: no seq missing from the middle, every link the hash of the event before
//! ([`check_events`]). Tested through [`super::verify_checkpoints`].

use std::collections::BTreeMap;

use super::verify::{Finding, at_file, folder_of};
use crate::CaseId;
use crate::custody::{Event, GENESIS, sha256_hex};

/// A stored event as the checks need it.
pub(super) struct StoredEvent<'a> {
    pub(super) key: &'a str,
    pub(super) sha256: String,
    pub(super) prev_sha256: String,
}

/// Parse the stored events by seq, reporting the unreadable, foreign, misplaced and repeated.
pub(super) fn read_events<'a>(
    case: &CaseId,
    events: &'a [(String, Vec<u8>)],
    findings: &mut Vec<Finding>,
) -> BTreeMap<u64, StoredEvent<'a>> {
    let mut stored: BTreeMap<u64, StoredEvent<'a>> = BTreeMap::new();
    for (key, bytes) in events {
        let event: Event = match serde_json::from_slice(bytes) {
            Ok(event) => event,
            Err(e) => {
                findings.push(Finding::new(
                    key,
                    format!("is not a readable custody event: {e}"),
                ));
                continue;
            }
        };
        let seq = event.seq;
        if seq == 0 {
            findings.push(Finding::new(
                key,
                "is event 0, but custody events are numbered from 1",
            ));
            continue;
        }
        if &event.case != case {
            findings.push(Finding::new(
                key,
                format!(
                    "is event {seq} of case {}, stored among the events of case {case}",
                    event.case
                ),
            ));
            continue;
        }
        if let Some(first) = stored.get(&seq) {
            findings.push(Finding::new(
                key,
                format!(
                    "is a second event {seq} (the first is {}): an event was copied or forged",
                    first.key
                ),
            ));
            continue;
        }
        if !at_file(key, &format!("{seq:08}.json")) {
            findings.push(Finding::new(
                key,
                format!("is event {seq} but is not stored as {seq:08}.json: it was moved"),
            ));
        }
        stored.insert(
            seq,
            StoredEvent {
                key,
                sha256: sha256_hex(bytes),
                prev_sha256: event.prev_sha256,
            },
        );
    }
    stored
}

/// Events missing from the middle of the chain, and links that do not match the bytes of the
/// event before (an edit that only the following event's link reveals).
pub(super) fn check_events(stored: &BTreeMap<u64, StoredEvent<'_>>, findings: &mut Vec<Finding>) {
    let highest = stored.keys().next_back().copied().unwrap_or(0);
    let folder = stored
        .values()
        .next()
        .map(|e| folder_of(e.key).to_string())
        .unwrap_or_default();
    // Missing seqs as runs between stored ones (a forged seq far ahead is one run, not a loop).
    let mut lower = 0;
    for &seq in stored.keys() {
        if seq - lower > 1 {
            let (first, last) = (lower + 1, seq - 1);
            findings.push(if first == last {
                Finding::new(
                    format!("{folder}{last:08}.json"),
                    format!(
                        "custody event {last} is missing (events up to {highest} are stored): it \
                         was deleted"
                    ),
                )
            } else {
                Finding::new(
                    folder.clone(),
                    format!(
                        "custody events {first} to {last} are missing (events up to {highest} \
                         are stored): they were deleted"
                    ),
                )
            });
        }
        lower = seq;
    }
    for (&seq, event) in stored {
        if seq <= 1 {
            if event.prev_sha256 != GENESIS {
                findings.push(Finding::new(
                    event.key,
                    format!(
                        "is event {seq} but links to a previous event hashing {}: earlier events \
                         were deleted, or it was renumbered",
                        event.prev_sha256
                    ),
                ));
            }
            continue;
        }
        let Some(before) = stored.get(&(seq - 1)) else {
            continue;
        };
        if event.prev_sha256 != before.sha256 {
            findings.push(Finding::new(
                before.key,
                format!(
                    "custody event {} hashes {}, but event {seq} ({}) links to {}: event {} was \
                     edited or replaced",
                    seq - 1,
                    before.sha256,
                    event.key,
                    event.prev_sha256,
                    seq - 1
                ),
            ));
        }
    }
}
