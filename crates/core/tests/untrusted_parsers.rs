//! The parsers `verify --offline` runs on files an adversary may have crafted, fed arbitrary
//! input and mutations of the files forensnap writes (proptest, a bounded number of cases per
//! run; failures are kept in `proptest-regressions/` beside this file, the regression corpus):
//! none panics, and what they accept stays safe to use (a case id never leaves its key prefix).

use forensnap_core::CaseId;
use forensnap_core::bag::{parse_bag_info, parse_manifest};
use forensnap_core::custody::verify_chain;
use forensnap_core::layout::BlockMapEntry;
use forensnap_core::seal::{Checkpoint, parse_public_key_pem};
use proptest::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/case-before-store"
);

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURE}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A file forensnap wrote, with up to 8 bytes changed, inserted or removed.
fn mutated(original: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = original.len();
    prop::collection::vec((0..=len, any::<u8>(), 0u8..3), 1..8).prop_map(move |edits| {
        let mut bytes = original.clone();
        for (at, byte, how) in edits {
            let at = at.min(bytes.len());
            match how {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.push(byte),
            }
        }
        bytes
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const VOLUME: &str = "evidence/vol-cc3d818e67bbf08a4";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn manifests_never_panic(
        any_text in ".{0,400}",
        bytes in mutated(fixture(&format!("{VOLUME}/manifest-sha256.txt"))),
        tags in mutated(fixture(&format!("{VOLUME}/tagmanifest-sha256.txt"))),
    ) {
        let _ = parse_manifest(&any_text);
        let _ = parse_manifest(&text(&bytes));
        let _ = parse_manifest(&text(&tags));
    }

    #[test]
    fn bag_info_never_panics(
        any_text in ".{0,400}",
        bytes in mutated(fixture(&format!("{VOLUME}/bag-info.txt"))),
    ) {
        let _ = parse_bag_info(&any_text);
        let _ = parse_bag_info(&text(&bytes));
    }

    #[test]
    fn block_map_lines_never_panic(
        any_text in ".{0,200}",
        bytes in mutated(fixture(&format!("{VOLUME}/data/blockmap.tsv"))),
    ) {
        let _ = BlockMapEntry::from_line(&any_text);
        for line in text(&bytes).lines() {
            let _ = BlockMapEntry::from_line(line);
        }
    }

    #[test]
    fn accepted_case_ids_stay_inside_their_prefix(given in "\\PC{0,60}|[A-Za-z0-9._/-]{0,60}") {
        if let Ok(id) = CaseId::parse(&given) {
            let id = id.to_string();
            // A path component of its own: never `.` or `..`, never a separator (`A..` is a
            // name like any other in `cases/A../`).
            prop_assert!(!id.contains('/') && !id.contains('\\') && id != "." && id != "..", "{id}");
            prop_assert!(id.len() <= forensnap_core::case::MAX_CASE_ID, "{id}");
            prop_assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        }
    }

    #[test]
    fn signed_checkpoints_and_keys_never_panic(
        checkpoint in mutated(fixture("custody/checkpoints/00000001.json")),
        pem in mutated(fixture("custody/checkpoints/signing-key.pem")),
        any_bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let _ = Checkpoint::from_bytes(&checkpoint);
        let _ = Checkpoint::from_bytes(&any_bytes);
        let _ = parse_public_key_pem(&text(&pem));
        let _ = parse_public_key_pem(&text(&any_bytes));
    }

    #[test]
    fn a_changed_custody_event_never_panics_and_never_passes(
        first in mutated(fixture("custody/events/00000001.json")),
        any_bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let case = CaseId::parse("IR-COMPAT-1").expect("case");
        let original = fixture("custody/events/00000001.json");
        let second = fixture("custody/events/00000002.json");
        let chain = [
            ("custody/events/00000001.json".to_string(), first.clone()),
            ("custody/events/00000002.json".to_string(), second),
        ];
        let checked = verify_chain(&case, &chain);
        if first != original {
            prop_assert!(checked.is_err(), "a changed first event passed");
        }
        let _ = verify_chain(&case, &[("custody/events/00000001.json".to_string(), any_bytes)]);
    }
}
