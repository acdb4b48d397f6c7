//! Which paths may name a file in a bag: relative, '/'-separated, normalised, payload only under
//! `data/`, no tag file under a name BagIt tools interpret, and no path twice or as both a file
//! and a directory. Tested through [`super::manifest()`] and [`super::tag_files`], which apply
//! these rules.

use std::collections::BTreeSet;

use super::{BAG_INFO_PATH, BAGIT_PATH, BagError};

/// Payload lives under this directory; everything else in the bag is a tag file.
const PAYLOAD_DIR: &str = "data";

/// A path that names a file inside the bag: relative, '/'-separated, normalised.
pub(super) fn check_path(path: &str) -> Result<(), BagError> {
    let reason = if path.is_empty() {
        "it is empty"
    } else if path.starts_with('/') {
        "it is absolute"
    } else if path.contains('\\') {
        // bagit-python on Windows would read it as a separator; use '/'.
        "it contains a backslash (separate components with '/')"
    } else if path.contains('\0') {
        "it contains a NUL byte"
    } else if path.split('/').any(|component| component == "..") {
        "it has a '..' component, which would leave the bag"
    } else if path.split('/').any(|component| component == ".") {
        "it has a '.' component"
    } else if path.split('/').any(str::is_empty) {
        "it has an empty component (doubled or trailing '/')"
    } else {
        return Ok(());
    };
    Err(BagError::InvalidPath {
        path: path.to_string(),
        reason,
    })
}

pub(super) fn is_under_payload(path: &str) -> bool {
    path == PAYLOAD_DIR
        || path
            .strip_prefix(PAYLOAD_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Top-level names BagIt tools interpret: a stray manifest would be validated against the
/// payload, a fetch.txt would make the bag look incomplete.
pub(super) fn is_reserved_tag(path: &str) -> bool {
    path == BAGIT_PATH
        || path == BAG_INFO_PATH
        || path == "fetch.txt"
        || (!path.contains('/')
            && path.ends_with(".txt")
            && (path.starts_with("manifest-") || path.starts_with("tagmanifest-")))
}

/// No path twice, and no path that is also a directory of another.
pub(super) fn check_distinct<'a>(paths: impl Iterator<Item = &'a str>) -> Result<(), BagError> {
    let mut all = BTreeSet::new();
    for path in paths {
        if !all.insert(path) {
            return Err(BagError::Duplicate {
                path: path.to_string(),
            });
        }
    }
    for path in &all {
        for (slash, _) in path.match_indices('/') {
            if let Some(file) = all.get(&path[..slash]) {
                return Err(BagError::FileAndDirectory {
                    file: file.to_string(),
                    inside: path.to_string(),
                });
            }
        }
    }
    Ok(())
}
