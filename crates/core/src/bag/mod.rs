//! Evidence bags: the text of the BagIt 1.0 (RFC 8493) tag files that wrap each evidence item,
//! their parsers, and the `rebuild.sh` script that turns the stored blocks back into a raw image.
//!
//! An auditor downloads a bag and checks it without forensnap: `sha256sum -c manifest-sha256.txt`,
//! `sha256sum -c tagmanifest-sha256.txt` and `bagit.py --validate` must all pass. So manifests use
//! sha256sum's text format (`<hex>  <path>`, two spaces; bagit-python writes one space in tag
//! manifests, which `shasum -c` rejects), LF line endings, paths relative to the bag root with
//! '/' separators, sorted. Nothing here touches a file: the caller writes the returned bytes.
//!
//! [`tag_files`] returns the tag files in the order they must be written; the tag manifest comes
//! last because it hashes every other tag file, so its presence marks a complete bag.
//!
//! This module owns the bag's file names and [`BagError`]; the work is done in submodules, whose
//! public items are re-exported here (`forensnap_core::bag::X` is the only path to use):
//!
//! * `tags`     -- [`PayloadFile`], [`TagFile`] and [`tag_files`], which assembles them.
//! * `manifest` -- manifests in sha256sum's format (paths percent-encoded as RFC 8493 says) and
//!   the one-line `data/image.sha256`.
//! * `info`     -- `bag-info.txt`, its labels and `Payload-Oxum`.
//! * `paths`    -- which paths may name a file in a bag, payload or tag.
//! * `rebuild`  -- [`rebuild_script`], filled in from the shell template `bag/rebuild.sh`.
//! * `shell`    -- quoting for sh (also used by [`crate::seal`]'s VERIFY.md).
//! * `fixtures` -- test-only builders of bag contents and scratch bags on disk.

mod info;
mod manifest;
mod paths;
mod rebuild;
pub(crate) mod shell;
mod tags;

#[cfg(test)]
mod fixtures;

pub use info::{bag_info, parse_bag_info};
pub use manifest::{manifest, parse_manifest, sha256sum_line};
pub use rebuild::rebuild_script;
pub use tags::{PayloadFile, TagFile, tag_files};

/// Content of `bagit.txt` (the bag declaration).
pub const BAGIT_TXT: &str = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";
/// Path of the bag declaration.
pub const BAGIT_PATH: &str = "bagit.txt";
/// Path of the bag metadata.
pub const BAG_INFO_PATH: &str = "bag-info.txt";
/// Path of the payload manifest.
pub const MANIFEST_PATH: &str = "manifest-sha256.txt";
/// Path of the tag manifest, the last file written to a bag.
pub const TAG_MANIFEST_PATH: &str = "tagmanifest-sha256.txt";
/// Path of the rebuild script ([`rebuild_script`]) in the bag root.
pub const REBUILD_SCRIPT_PATH: &str = "rebuild.sh";
/// File name of the rebuilt image, as named in `data/image.sha256`.
pub const IMAGE_NAME: &str = "disk.raw";

/// Why a bag's tag files could not be written or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BagError {
    /// A path that cannot name a file inside the bag.
    #[error("bag path {path:?} is not allowed: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A payload file outside `data/`.
    #[error("payload file {path:?} is not under data/")]
    NotPayload {
        /// The offending path.
        path: String,
    },
    /// A tag file inside `data/`, where only payload may live.
    #[error("tag file {path:?} is under data/, which holds only payload files")]
    TagInPayload {
        /// The offending path.
        path: String,
    },
    /// A tag file whose name BagIt or forensnap reserves.
    #[error(
        "tag file {path:?} has a reserved name (bagit.txt, bag-info.txt, fetch.txt, manifest-*.txt \
         and tagmanifest-*.txt are written by forensnap or mean something to BagIt tools)"
    )]
    ReservedTag {
        /// The offending path.
        path: String,
    },
    /// The same path listed twice.
    #[error("bag path {path:?} is listed twice")]
    Duplicate {
        /// The repeated path.
        path: String,
    },
    /// A path used both as a file and as a directory of another file.
    #[error("bag path {file:?} is a file, but {inside:?} needs it to be a directory")]
    FileAndDirectory {
        /// The path listed as a file.
        file: String,
        /// The path that lies under it.
        inside: String,
    },
    /// A digest that is not 64 lowercase hex characters.
    #[error("SHA-256 of {path:?} must be 64 lowercase hex characters, got {digest:?}")]
    InvalidDigest {
        /// The file the digest belongs to.
        path: String,
        /// The offending digest.
        digest: String,
    },
    /// A bag-info label that cannot be written as `Label: value`.
    #[error("bag-info label {label:?} {reason}")]
    InvalidLabel {
        /// The offending label.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A bag-info value with a line break, which would start a new element.
    #[error("bag-info value of {label:?} contains a line break (CR or LF)")]
    InvalidValue {
        /// The label of the offending value.
        label: String,
    },
    /// A manifest line that cannot be parsed.
    #[error("manifest line {line}: {reason}")]
    ManifestLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A bag-info.txt line that cannot be parsed.
    #[error("bag-info.txt line {line}: {reason}")]
    BagInfoLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Lines of a tag file with their 1-based numbers, LF or CRLF terminated.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_terminator('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line))
}
