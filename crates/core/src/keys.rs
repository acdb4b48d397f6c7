//! The case layout: every key of a case in the evidence bucket (custody events, checkpoints,
//! evidence items, the files of a bag, acquisition state), produced here and nowhere else.
//!
//! ```text
//! {prefix/}cases/{case}/
//!   custody/events/00000001.json ...        the hash-chained custody events
//!   custody/checkpoints/00000001.json(.sig)  signed checkpoints, and signing-key.pem
//!   evidence/{item}/                          one BagIt bag per evidence item
//!     bagit.txt bag-info.txt manifest-sha256.txt tagmanifest-sha256.txt(.sig) ...
//!     data/...                                the payload
//!     acquisition/parts/00001.json            resume state of a volume (not evidence)
//!     acquisition/complete.json               its completion marker
//! ```
//!
//! The configured prefix is normalised once (`/evidence/`, `evidence` and `evidence/` give
//! `evidence/cases/...`; an empty prefix gives `cases/...`).

use crate::case::CaseId;
use crate::seal::{PUBLIC_KEY_PATH, SIGNATURE_SUFFIX};

/// The payload file of an instance-record item (the DescribeInstances reservation).
pub const INSTANCE_RECORD_PATH: &str = "data/describe-instances.json";
/// The payload file of a console-output item.
pub const CONSOLE_OUTPUT_PATH: &str = "data/console-output.txt";

/// Every key of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseLayout {
    /// `{prefix/}cases/{case}/`.
    root: String,
}

impl CaseLayout {
    /// The layout of `case` under the configured evidence prefix.
    pub fn new(prefix: &str, case: &CaseId) -> Self {
        let trimmed = prefix.trim_matches('/');
        let root = if trimmed.is_empty() {
            format!("cases/{case}/")
        } else {
            format!("{trimmed}/cases/{case}/")
        };
        CaseLayout { root }
    }

    /// The layout of a case downloaded to a folder (`aws s3 sync s3://B/cases/C/ DIR`): keys
    /// relative to the case's own folder.
    pub fn downloaded() -> Self {
        CaseLayout {
            root: String::new(),
        }
    }

    /// The prefix of everything of the case (`custody/`, `evidence/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The prefix of the custody events.
    pub fn events(&self) -> String {
        format!("{}custody/events/", self.root)
    }

    /// The key of event `seq` (sorted by sequence when listed).
    pub fn event(&self, seq: u64) -> String {
        format!("{}{seq:08}.json", self.events())
    }

    /// The prefix of the signed checkpoints (and their signatures and public key).
    pub fn checkpoints(&self) -> String {
        format!("{}custody/checkpoints/", self.root)
    }

    /// The key of checkpoint `number` (sorted by number when listed).
    pub fn checkpoint(&self, number: u64) -> String {
        format!("{}{number:08}.json", self.checkpoints())
    }

    /// The public key stored beside the checkpoints, for offline verification.
    pub fn checkpoints_public_key(&self) -> String {
        format!("{}{PUBLIC_KEY_PATH}", self.checkpoints())
    }

    /// The prefix of every evidence item.
    pub fn items(&self) -> String {
        format!("{}evidence/", self.root)
    }

    /// Where a custody report's file is stored: `reports/<report id>/<file>`.
    pub fn report(&self, report_id: &str, file: &str) -> String {
        format!("{}reports/{report_id}/{file}", self.root)
    }

    /// The layout of evidence item `id`.
    pub fn item(&self, id: &str) -> ItemLayout {
        ItemLayout {
            prefix: format!("{}{id}/", self.items()),
        }
    }
}

/// The key of a signature beside the object at `key`.
pub fn signature_of(key: &str) -> String {
    format!("{key}{SIGNATURE_SUFFIX}")
}

/// Every key of one evidence item (a BagIt bag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLayout {
    /// `.../evidence/{id}/`.
    prefix: String,
}

impl ItemLayout {
    /// An item whose prefix is already known (read back from a checkpoint or a listing).
    pub fn at(prefix: &str) -> Self {
        ItemLayout {
            prefix: prefix.to_string(),
        }
    }

    /// The bag's prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of the bag file at `path` (relative to the bag root: `data/blocks.bin`).
    pub fn file(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The folder of the data part checkpoints, ending in `/`.
    pub fn part_checkpoints(&self) -> String {
        format!("{}acquisition/parts/", self.prefix)
    }

    /// The key of the checkpoint of data part `part`.
    pub fn part_checkpoint(&self, part: u32) -> String {
        format!("{}{part:05}.json", self.part_checkpoints())
    }

    /// The key of the acquisition's completion marker.
    pub fn completion_marker(&self) -> String {
        format!("{}acquisition/complete.json", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> CaseId {
        CaseId::parse("IR-7").expect("case")
    }

    #[test]
    fn every_key_of_a_case_under_a_normalised_prefix() {
        for prefix in ["evidence", "/evidence/", "evidence/"] {
            let layout = CaseLayout::new(prefix, &case());
            assert_eq!(layout.root(), "evidence/cases/IR-7/");
            assert_eq!(
                layout.event(3),
                "evidence/cases/IR-7/custody/events/00000003.json"
            );
            assert_eq!(
                layout.checkpoint(3),
                "evidence/cases/IR-7/custody/checkpoints/00000003.json"
            );
        }
        let layout = CaseLayout::new("", &case());
        assert_eq!(layout.events(), "cases/IR-7/custody/events/");
        assert_eq!(layout.checkpoints(), "cases/IR-7/custody/checkpoints/");
        assert_eq!(
            layout.checkpoints_public_key(),
            "cases/IR-7/custody/checkpoints/signing-key.pem"
        );
        let item = layout.item("vol-1");
        assert_eq!(item.prefix(), "cases/IR-7/evidence/vol-1/");
        assert_eq!(
            item.file("data/blocks.bin"),
            "cases/IR-7/evidence/vol-1/data/blocks.bin"
        );
        assert_eq!(
            item.part_checkpoint(2),
            "cases/IR-7/evidence/vol-1/acquisition/parts/00002.json"
        );
        assert_eq!(
            item.completion_marker(),
            "cases/IR-7/evidence/vol-1/acquisition/complete.json"
        );
        assert_eq!(
            signature_of(&layout.checkpoint(1)),
            "cases/IR-7/custody/checkpoints/00000001.json.sig"
        );
        assert_eq!(
            CaseLayout::downloaded().event(1),
            "custody/events/00000001.json"
        );
        assert_eq!(ItemLayout::at("x/").file("bagit.txt"), "x/bagit.txt");
    }

    #[test]
    fn a_prefix_of_x_gives_x_slash_cases() {
        // The CLI once printed `xcases/...` for `evidence_prefix = "x"`.
        assert_eq!(CaseLayout::new("x", &case()).root(), "x/cases/IR-7/");
    }
}
