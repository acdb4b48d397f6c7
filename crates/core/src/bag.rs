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

use std::collections::BTreeSet;

use crate::custody::sha256_hex;
use crate::layout::{BLOCK_SIZE, IMAGE_SHA256_PATH};

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

/// bag-info label computed by [`bag_info`] from the payload.
const PAYLOAD_OXUM: &str = "Payload-Oxum";
/// Payload lives under this directory; everything else in the bag is a tag file.
const PAYLOAD_DIR: &str = "data";

/// One payload file (under `data/`) as listed in the payload manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadFile {
    /// Path relative to the bag root, '/'-separated, starting with `data/`.
    pub path: String,
    /// SHA-256 of the file, 64 lowercase hex characters.
    pub sha256: String,
    /// Size in bytes (for `Payload-Oxum`).
    pub size: u64,
}

/// One tag file (outside `data/`) with its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFile {
    /// Path relative to the bag root, '/'-separated.
    pub path: String,
    /// The file's content.
    pub bytes: Vec<u8>,
}

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

/// `bag-info.txt`: the given `Label: value` fields in order, then `Payload-Oxum:
/// <total octets>.<file count>` computed from `payload`.
///
/// Labels must be non-empty, without ':', CR, LF or leading/trailing whitespace, and must not be
/// `Payload-Oxum` (it is computed here); values must not contain CR or LF.
pub fn bag_info(fields: &[(String, String)], payload: &[PayloadFile]) -> Result<String, BagError> {
    let mut text = String::new();
    for (label, value) in fields {
        check_label(label)?;
        if value.contains(['\r', '\n']) {
            return Err(BagError::InvalidValue {
                label: label.clone(),
            });
        }
        text.push_str(&format!("{label}: {value}\n"));
    }
    let octets: u64 = payload.iter().map(|file| file.size).sum();
    text.push_str(&format!("{PAYLOAD_OXUM}: {octets}.{}\n", payload.len()));
    Ok(text)
}

fn check_label(label: &str) -> Result<(), BagError> {
    let reason = if label.is_empty() {
        "is empty"
    } else if label.contains(['\r', '\n']) {
        "contains a line break"
    } else if label.contains(':') {
        "contains ':', which separates label from value"
    } else if label.trim() != label {
        // A leading blank would make the line a continuation of the previous value.
        "has leading or trailing whitespace"
    } else if label.eq_ignore_ascii_case(PAYLOAD_OXUM) {
        "is computed from the payload and cannot be given"
    } else {
        return Ok(());
    };
    Err(BagError::InvalidLabel {
        label: label.to_string(),
        reason,
    })
}

/// Manifest text: `<hex>  <path>\n` per file, sorted by path, with CR, LF and '%' in paths
/// percent-encoded as RFC 8493 requires (`sha256sum -c` does not decode them, so forensnap's
/// own payload names avoid those characters).
///
/// Every path must be a valid bag path (relative, '/'-separated, no `.`/`..` or empty
/// components), listed once, and every hex digest 64 lowercase hex characters.
pub fn manifest(entries: &[(String, String)]) -> Result<String, BagError> {
    for (path, hex) in entries {
        check_path(path)?;
        if !is_sha256_hex(hex) {
            return Err(BagError::InvalidDigest {
                path: path.clone(),
                digest: hex.clone(),
            });
        }
    }
    check_distinct(entries.iter().map(|(path, _)| path.as_str()))?;
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort();
    Ok(sorted
        .into_iter()
        .map(|(path, hex)| format!("{hex}  {}\n", encode_path(path)))
        .collect())
}

/// Every tag file of a bag, in the order they must be written: `bagit.txt`, `bag-info.txt`,
/// `manifest-sha256.txt`, then `extra` in the given order (e.g. `rebuild.sh`, `README.txt`),
/// then `tagmanifest-sha256.txt` last: it lists the SHA-256 of every other tag file, so a bag
/// that has it was written completely.
///
/// Payload paths must lie under `data/`; extra tag files must not, must not take a reserved
/// name ([`BagError::ReservedTag`]) and must not collide with any other file of the bag.
pub fn tag_files(
    info: &[(String, String)],
    payload: &[PayloadFile],
    extra: Vec<TagFile>,
) -> Result<Vec<TagFile>, BagError> {
    for file in payload {
        check_path(&file.path)?;
        if !is_under_payload(&file.path) {
            return Err(BagError::NotPayload {
                path: file.path.clone(),
            });
        }
    }
    for file in &extra {
        check_path(&file.path)?;
        if is_under_payload(&file.path) {
            return Err(BagError::TagInPayload {
                path: file.path.clone(),
            });
        }
        if is_reserved_tag(&file.path) {
            return Err(BagError::ReservedTag {
                path: file.path.clone(),
            });
        }
    }
    // Payload and tag paths together must be writable as one directory tree.
    check_distinct(
        payload
            .iter()
            .map(|file| file.path.as_str())
            .chain(extra.iter().map(|file| file.path.as_str())),
    )?;

    let entries: Vec<(String, String)> = payload
        .iter()
        .map(|file| (file.path.clone(), file.sha256.clone()))
        .collect();
    let mut files = vec![
        TagFile {
            path: BAGIT_PATH.to_string(),
            bytes: BAGIT_TXT.as_bytes().to_vec(),
        },
        TagFile {
            path: BAG_INFO_PATH.to_string(),
            bytes: bag_info(info, payload)?.into_bytes(),
        },
        TagFile {
            path: MANIFEST_PATH.to_string(),
            bytes: manifest(&entries)?.into_bytes(),
        },
    ];
    files.extend(extra);
    let tag_entries: Vec<(String, String)> = files
        .iter()
        .map(|file| (file.path.clone(), sha256_hex(&file.bytes)))
        .collect();
    files.push(TagFile {
        path: TAG_MANIFEST_PATH.to_string(),
        bytes: manifest(&tag_entries)?.into_bytes(),
    });
    Ok(files)
}

/// Parse a manifest written by [`manifest`] or by `sha256sum` (`<hex>  <path>`, also the binary
/// marker `<hex> *<path>` and bagit-python's single space `<hex> <path>`; LF or CRLF line ends;
/// blank lines skipped). Returns `(path, hex)` in file order, paths percent-decoded and hex
/// lowercased; refuses invalid paths and paths listed twice. Errors name the 1-based line.
pub fn parse_manifest(text: &str) -> Result<Vec<(String, String)>, BagError> {
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    for (number, line) in lines(text) {
        if line.is_empty() {
            continue;
        }
        let error = |reason: String| BagError::ManifestLine {
            line: number,
            reason,
        };
        let (hex, rest) = line
            .split_once([' ', '\t'])
            .ok_or_else(|| error("expected `<sha256 hex>  <path>`".to_string()))?;
        let hex = hex.to_ascii_lowercase();
        if !is_sha256_hex(&hex) {
            return Err(error(format!(
                "{hex:?} is not a SHA-256 of 64 hex characters"
            )));
        }
        // sha256sum: one separator, then ' ' (text mode) or '*' (binary mode) before the name.
        let encoded = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .unwrap_or(rest);
        let path = decode_path(encoded);
        check_path(&path).map_err(|e| error(e.to_string()))?;
        if !seen.insert(path.clone()) {
            return Err(error(format!("path {path:?} is listed twice")));
        }
        entries.push((path, hex));
    }
    Ok(entries)
}

/// Parse `bag-info.txt` into `(label, value)` pairs in order. A line starting with a space or
/// tab continues the previous value (RFC 8493), joined with a single space; blank lines are
/// skipped; the one blank after the ':' is not part of the value.
pub fn parse_bag_info(text: &str) -> Result<Vec<(String, String)>, BagError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (number, line) in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields.last_mut().ok_or_else(|| BagError::BagInfoLine {
                line: number,
                reason: "continuation line (starts with whitespace) before any label".to_string(),
            })?;
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(line.trim_start());
            continue;
        }
        let (label, value) = line.split_once(':').ok_or_else(|| BagError::BagInfoLine {
            line: number,
            reason: format!("{line:?} has no ':' separating label and value"),
        })?;
        let label = label.trim_end();
        if label.is_empty() {
            return Err(BagError::BagInfoLine {
                line: number,
                reason: "empty label before ':'".to_string(),
            });
        }
        let value = value.strip_prefix([' ', '\t']).unwrap_or(value).to_string();
        fields.push((label.to_string(), value));
    }
    Ok(fields)
}

/// `<hex>  <name>\n`, the line `sha256sum -c` checks (stored as `data/image.sha256` naming
/// [`IMAGE_NAME`]). A name with '\\' or LF is escaped as sha256sum itself does (line starts
/// with '\\', `\\` and `\n` in the name).
pub fn sha256sum_line(hex: &str, name: &str) -> String {
    if name.contains(['\\', '\n']) {
        let escaped = name.replace('\\', "\\\\").replace('\n', "\\n");
        format!("\\{hex}  {escaped}\n")
    } else {
        format!("{hex}  {name}\n")
    }
}

/// Lines of a tag file with their 1-based numbers, LF or CRLF terminated.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_terminator('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line))
}

/// A path that names a file inside the bag: relative, '/'-separated, normalised.
fn check_path(path: &str) -> Result<(), BagError> {
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

fn is_under_payload(path: &str) -> bool {
    path == PAYLOAD_DIR
        || path
            .strip_prefix(PAYLOAD_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Top-level names BagIt tools interpret: a stray manifest would be validated against the
/// payload, a fetch.txt would make the bag look incomplete.
fn is_reserved_tag(path: &str) -> bool {
    path == BAGIT_PATH
        || path == BAG_INFO_PATH
        || path == "fetch.txt"
        || (!path.contains('/')
            && path.ends_with(".txt")
            && (path.starts_with("manifest-") || path.starts_with("tagmanifest-")))
}

/// No path twice, and no path that is also a directory of another.
fn check_distinct<'a>(paths: impl Iterator<Item = &'a str>) -> Result<(), BagError> {
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

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// RFC 8493 §2.1.3: in manifests, CR, LF and '%' in a path are written %0D, %0A and %25.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '\n' => encoded.push_str("%0A"),
            '\r' => encoded.push_str("%0D"),
            c => encoded.push(c),
        }
    }
    encoded
}

/// Inverse of [`encode_path`], in one left-to-right pass so `%250A` decodes to `%0A`. Any other
/// '%' (from a tool that does not encode) is kept as it is.
fn decode_path(encoded: &str) -> String {
    let mut path = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        path.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).map(str::to_ascii_uppercase);
        let decoded = match escape.as_deref() {
            Some("%25") => Some('%'),
            Some("%0A") => Some('\n'),
            Some("%0D") => Some('\r'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                path.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                path.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    path.push_str(rest);
    path
}

/// Quote a string for sh: single quotes keep everything literal but `'` itself.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `rebuild.sh`: a POSIX `sh` script (dash is enough) that needs only `dd` to rebuild the raw
/// image of a volume stored in the "blocks" layout: `data_object` holds the stored blocks,
/// `block_map` is the [`crate::layout::BlockMapEntry`] text. Run from the bag root:
///
/// * `sh rebuild.sh disk.raw` writes a sparse file of exactly `volume_bytes` bytes, one `dd` per
///   run of consecutive stored blocks (a 100 GiB volume has up to 200k blocks; a `dd` each
///   would take hours), then `sha256sum -c data/image.sha256` checks it;
/// * `sh rebuild.sh -` (or `stream`) writes the image to stdout, zeros included, so
///   `sh rebuild.sh - | sha256sum` needs no disk space.
///
/// The script refuses (non-zero exit, message naming the map line) a map line whose offset is
/// not `index * BLOCK_SIZE`, whose length is not `BLOCK_SIZE`, whose object offset is not a
/// multiple of `BLOCK_SIZE`, whose index does not increase or lies beyond the volume, and a
/// `dd` that did not read every block it was asked for (a truncated blocks object).
pub fn rebuild_script(
    volume_bytes: u64,
    data_object: &str,
    block_map: &str,
    image_sha256: &str,
) -> String {
    // Caller-given strings only ever appear single-quoted in code, never in comments, so no
    // value can break out of its assignment.
    let header = format!(
        "#!/bin/sh
# rebuild.sh -- rebuilds the raw image of the EBS volume preserved in this evidence bag.
# Written by forensnap. Needs only a POSIX sh (dash is enough) and dd.
#
# The payload keeps only the {BLOCK_SIZE}-byte blocks EBS listed for the snapshot, concatenated
# in index order in DATA (below); the block map MAP gives, per stored block, its index in the
# volume and its byte offset in DATA. Blocks the map does not list are zeros.
#
# Usage, from the bag root (the directory holding bagit.txt):
#   sh rebuild.sh disk.raw   writes the raw image as a sparse file of VOLUME_BYTES bytes;
#                            then, still in the bag root, `sha256sum -c {IMAGE_SHA256_PATH}`
#                            checks disk.raw against IMAGE_SHA256.
#   sh rebuild.sh -          writes the raw image to stdout (\"stream\" works too), needing no
#                            disk space:
#                              sh rebuild.sh - | sha256sum       (must print IMAGE_SHA256)
#                              sh rebuild.sh - | ewfacquirestream ...
set -eu

# The volume's size in bytes, EBS's block size, and the SHA-256 of the whole raw image.
VOLUME_BYTES={volume_bytes}
BLOCK_SIZE={BLOCK_SIZE}
IMAGE_SHA256={sha}
# The stored blocks, the block map, and the sha256sum file that names the image {IMAGE_NAME}.
DATA={data}
MAP={map}
CHECK={check}
IMAGE_NAME={image}
",
        sha = shell_quote(image_sha256),
        data = shell_quote(data_object),
        map = shell_quote(block_map),
        check = shell_quote(IMAGE_SHA256_PATH),
        image = shell_quote(IMAGE_NAME),
    );
    header + REBUILD_BODY
}

/// The part of `rebuild.sh` that does not depend on the volume. Kept free of `format!` braces
/// so the shell text reads as it runs.
const REBUILD_BODY: &str = r#"
# dd's "N+M records in" report is checked below; keep it untranslated.
LC_ALL=C
export LC_ALL
TAB=$(printf '\t')
BLOCKS=$(( (VOLUME_BYTES + BLOCK_SIZE - 1) / BLOCK_SIZE ))  # blocks the volume spans
FULL_BLOCKS=$(( VOLUME_BYTES / BLOCK_SIZE ))
TAIL=$(( VOLUME_BYTES % BLOCK_SIZE ))  # bytes of a partial last block (0 for EBS volumes)

mode=
out=
writing=

usage() {
    printf '%s\n' \
        "usage: sh rebuild.sh OUTPUT   write the raw image to the file OUTPUT (sparse)" \
        "       sh rebuild.sh -        write the raw image to stdout (also: stream)" \
        "Run it from the bag root (the directory holding bagit.txt)." >&2
    exit 2
}

fail() {
    printf 'rebuild.sh: %s\n' "$*" >&2
    if [ -n "$writing" ]; then
        printf 'rebuild.sh: %s is incomplete: do not use it\n' "$out" >&2
    fi
    exit 1
}

# number VALUE WHAT: VALUE must be a plain decimal. No sign, no leading zero ($(( )) reads 010
# as octal), at most 18 digits (64-bit arithmetic).
number() {
    case $1 in
        '' | *[!0-9]*) fail "$2 is not a decimal number: '$1'" ;;
        0?*) fail "$2 has a leading zero: '$1'" ;;
    esac
    if [ ${#1} -gt 18 ]; then
        fail "$2 is too large: $1"
    fi
}

# copy N DD-OPERANDS...: run dd quietly and fail unless it succeeded and read exactly N whole
# input blocks: a short or missing DATA must not silently give a shorter or shifted image.
# dd's stdout goes to fd 3 (the script's stdout), its report is captured.
copy() {
    want=$1
    shift
    if ! report=$(dd "$@" 2>&1 >&3); then
        fail "dd $* failed: $report"
    fi
    case $report in
        "$want+0 records in"*) ;;
        *) fail "dd $* did not read $want whole blocks (is $DATA complete?): $report" ;;
    esac
}

# zeros N: stream N zero blocks.
zeros() {
    if [ "$1" -gt 0 ]; then
        copy "$1" if=/dev/zero bs="$BLOCK_SIZE" count="$1"
    fi
}

# flush: write the current run of consecutive stored blocks (consecutive in the volume and
# in DATA) with one dd; one dd per block would take hours on a large volume.
flush() {
    if [ "$run_len" -eq 0 ]; then
        return 0
    fi
    if [ "$mode" = file ]; then
        copy "$run_len" if="$DATA" of="$out" bs="$BLOCK_SIZE" \
            skip=$((run_obj / BLOCK_SIZE)) seek="$run_index" count="$run_len" conv=notrunc
    else
        zeros $((run_index - next))
        full=$run_len
        if [ $((run_index + run_len)) -gt "$FULL_BLOCKS" ]; then
            full=$((run_len - 1))  # the run ends with the partial last block
        fi
        if [ "$full" -gt 0 ]; then
            copy "$full" if="$DATA" bs="$BLOCK_SIZE" skip=$((run_obj / BLOCK_SIZE)) count="$full"
        fi
        if [ "$full" -lt "$run_len" ]; then
            copy "$TAIL" if="$DATA" bs=1 skip=$((run_obj + full * BLOCK_SIZE)) count="$TAIL"
        fi
        next=$((run_index + run_len))
    fi
    run_len=0
}

if [ $# -ne 1 ]; then
    usage
fi
case $1 in
    - | stream) mode=stream ;;
    '' | -*) usage ;;
    *) mode=file out=$1 ;;
esac
if [ ! -f "$MAP" ]; then
    fail "$MAP not found: run this script from the bag root (the directory holding bagit.txt)"
fi
exec 3>&1
if [ "$mode" = file ]; then
    case $out in
        data/* | ./data/*) fail "refusing to write into the bag's payload: $out" ;;
    esac
    if [ -e "$out" ] && { [ "$out" -ef "$DATA" ] || [ "$out" -ef "$MAP" ]; }; then
        fail "refusing to overwrite the bag's payload: $out"
    fi
    # On a device, blocks the map does not list would keep their old bytes instead of zeros.
    if [ -e "$out" ] && [ ! -f "$out" ]; then
        fail "$out exists and is not a regular file: give a new file name"
    fi
    : >"$out"
    writing=1
elif [ -t 1 ]; then
    fail "refusing to write a disk image to a terminal: pipe it, e.g. sh rebuild.sh - | sha256sum"
fi

lineno=0
prev=-1                       # last index read
run_index=0 run_obj=0 run_len=0  # current run of stored blocks
next=0                        # stream: next volume block to write
while index=; IFS=$TAB read -r index offset length object_offset rest || [ -n "$index" ]; do
    lineno=$((lineno + 1))
    case $index in
        '#'*) continue ;;  # header
    esac
    if [ -z "$index$offset$length$object_offset$rest" ]; then
        continue
    fi
    where="$MAP line $lineno"
    number "$index" "$where: index"
    number "$offset" "$where: offset"
    number "$length" "$where: length"
    number "$object_offset" "$where: object_offset"
    if [ "$index" -ge "$BLOCKS" ]; then
        fail "$where: block $index lies beyond the end of the volume ($VOLUME_BYTES bytes)"
    fi
    if [ "$offset" -ne $((index * BLOCK_SIZE)) ]; then
        fail "$where: offset $offset is not index $index times $BLOCK_SIZE"
    fi
    if [ "$length" -ne "$BLOCK_SIZE" ]; then
        fail "$where: length $length is not the block size $BLOCK_SIZE"
    fi
    if [ $((object_offset % BLOCK_SIZE)) -ne 0 ]; then
        fail "$where: object_offset $object_offset is not a multiple of $BLOCK_SIZE"
    fi
    if [ "$index" -le "$prev" ]; then
        fail "$where: index $index does not follow the previous index $prev (indexes must increase)"
    fi
    prev=$index
    if [ "$run_len" -gt 0 ] && [ "$index" -eq $((run_index + run_len)) ] &&
        [ "$object_offset" -eq $((run_obj + run_len * BLOCK_SIZE)) ]; then
        run_len=$((run_len + 1))
    else
        flush
        run_index=$index run_obj=$object_offset run_len=1
    fi
done <"$MAP"
flush

if [ "$mode" = file ]; then
    # Set the exact length: extends the file sparsely past the last stored block.
    copy 0 if=/dev/null of="$out" bs=1 seek="$VOLUME_BYTES"
    writing=
    case $out in
        "$IMAGE_NAME" | "./$IMAGE_NAME")
            printf '%s\n' "Wrote $out ($VOLUME_BYTES bytes). Check it, from the bag root, with:" \
                "  sha256sum -c $CHECK" ;;
        *)
            printf '%s\n' "Wrote $out ($VOLUME_BYTES bytes). Its SHA-256 must be $IMAGE_SHA256" \
                "($CHECK names $IMAGE_NAME: sha256sum -c $CHECK checks a file of that name)." ;;
    esac
else
    zeros $((FULL_BLOCKS - next))
    if [ "$TAIL" -gt 0 ] && [ "$next" -le "$FULL_BLOCKS" ]; then
        copy "$TAIL" if=/dev/zero bs=1 count="$TAIL"
    fi
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{BLOCK_MAP_HEADER, BlockMapEntry};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    fn hex_of(byte: char) -> String {
        byte.to_string().repeat(64)
    }

    fn entry(path: &str, byte: char) -> (String, String) {
        (path.to_string(), hex_of(byte))
    }

    fn payload(path: &str, byte: char, size: u64) -> PayloadFile {
        PayloadFile {
            path: path.to_string(),
            sha256: hex_of(byte),
            size,
        }
    }

    fn field(label: &str, value: &str) -> (String, String) {
        (label.to_string(), value.to_string())
    }

    fn tag(path: &str, text: &str) -> TagFile {
        TagFile {
            path: path.to_string(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn manifest_is_sorted_with_two_spaces_and_round_trips() {
        let entries = vec![
            entry("data/b.bin", 'b'),
            entry("data/a/z.txt", 'a'),
            entry("data/a.tsv", 'c'),
        ];
        let text = manifest(&entries).expect("valid");
        assert_eq!(
            text,
            format!(
                "{}  data/a.tsv\n{}  data/a/z.txt\n{}  data/b.bin\n",
                hex_of('c'),
                hex_of('a'),
                hex_of('b')
            )
        );
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(parse_manifest(&text).expect("parses"), sorted);
        assert_eq!(manifest(&[]).expect("empty is valid"), "");
    }

    #[test]
    fn parse_manifest_accepts_sha256sum_and_bagit_python_forms() {
        let text = format!(
            "{}  data/text\r\n{} *data/binary\n\n{} data/single space\n{}\tdata/tab",
            hex_of('A'),
            hex_of('b'),
            hex_of('c'),
            hex_of('d')
        );
        assert_eq!(
            parse_manifest(&text).expect("parses"),
            vec![
                entry("data/text", 'a'),
                entry("data/binary", 'b'),
                entry("data/single space", 'c'),
                entry("data/tab", 'd'),
            ]
        );
    }

    #[test]
    fn parse_manifest_errors_name_the_line() {
        let good = format!("{}  data/a\n", hex_of('a'));
        let cases = [
            (format!("{good}{}  data/a\n", hex_of('b')), 2, "twice"),
            (format!("{good}abc  data/x\n"), 2, "64 hex"),
            (
                format!("{good}{}  data/b\n{}\n", hex_of('b'), hex_of('c')),
                3,
                "expected",
            ),
            (format!("{}  ../etc/passwd\n", hex_of('a')), 1, "'..'"),
            (format!("{}  /etc/passwd\n", hex_of('a')), 1, "absolute"),
            (format!("{}  \n", hex_of('a')), 1, "empty"),
        ];
        for (text, line, words) in cases {
            let error = parse_manifest(&text).expect_err(&text);
            assert!(
                matches!(error, BagError::ManifestLine { line: l, .. } if l == line),
                "{text:?}: {error}"
            );
            assert!(error.to_string().contains(words), "{text:?}: {error}");
        }
    }

    #[test]
    fn percent_newline_and_cr_in_paths_are_encoded_and_round_trip() {
        let entries = vec![
            entry("data/100%\nsure\r.txt", 'a'),
            entry("data/%0A literally", 'b'),
        ];
        let text = manifest(&entries).expect("valid");
        assert_eq!(
            text,
            format!(
                "{}  data/%250A literally\n{}  data/100%25%0Asure%0D.txt\n",
                hex_of('b'),
                hex_of('a')
            )
        );
        assert_eq!(text.lines().count(), 2, "one line per file");
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(parse_manifest(&text).expect("parses"), sorted);
        // Lower-case escapes and a stray '%' from other tools.
        assert_eq!(decode_path("a%0ab%0dc%zz%"), "a\nb\rc%zz%");
    }

    #[test]
    fn manifest_refuses_bad_paths_digests_and_duplicates() {
        let bad_paths = [
            "../x",
            "data/../../x",
            "/abs",
            "",
            "data//x",
            "data/x/",
            "./x",
            "a\\b",
        ];
        for path in bad_paths {
            let error = manifest(&[entry(path, 'a')]).expect_err(path);
            assert!(
                matches!(&error, BagError::InvalidPath { path: p, .. } if p == path),
                "{path}: {error}"
            );
            assert!(error.to_string().contains(&format!("{path:?}")), "{error}");
        }
        for digest in [
            "g".repeat(64),
            "A".repeat(64),
            "a".repeat(63),
            String::new(),
        ] {
            let error = manifest(&[("data/x".to_string(), digest.clone())]).expect_err(&digest);
            assert_eq!(
                error,
                BagError::InvalidDigest {
                    path: "data/x".into(),
                    digest
                }
            );
        }
        assert_eq!(
            manifest(&[entry("data/x", 'a'), entry("data/x", 'b')]),
            Err(BagError::Duplicate {
                path: "data/x".into()
            })
        );
        assert_eq!(
            manifest(&[entry("data/x/y", 'a'), entry("data/x", 'b')]),
            Err(BagError::FileAndDirectory {
                file: "data/x".into(),
                inside: "data/x/y".into()
            })
        );
    }

    #[test]
    fn bag_info_lists_fields_then_payload_oxum_and_round_trips() {
        let fields = vec![
            field("Source-Organization", "Example Corp IR"),
            field("External-Identifier", "case-2024-001/vol-0abc"),
            field("Empty", ""),
            field("Spaced", "  two leading blanks, a trailing one "),
        ];
        let files = [
            payload("data/blocks.bin", 'a', 3 * BLOCK_SIZE),
            payload("data/blockmap.tsv", 'b', 200),
            payload("data/image.sha256", 'c', 76),
        ];
        let text = bag_info(&fields, &files).expect("valid");
        let oxum = 3 * BLOCK_SIZE + 276;
        assert_eq!(
            text,
            format!(
                "Source-Organization: Example Corp IR\nExternal-Identifier: case-2024-001/vol-0abc\n\
                 Empty: \nSpaced:   two leading blanks, a trailing one \nPayload-Oxum: {oxum}.3\n"
            )
        );
        let mut expected = fields.clone();
        expected.push(field("Payload-Oxum", &format!("{oxum}.3")));
        assert_eq!(parse_bag_info(&text).expect("parses"), expected);
        assert_eq!(
            bag_info(&[], &[]).expect("valid"),
            "Payload-Oxum: 0.0\n",
            "an empty payload still has an oxum"
        );
    }

    #[test]
    fn bag_info_refuses_bad_labels_and_values() {
        for label in [
            "",
            "Has:Colon",
            " Lead",
            "Trail ",
            "Line\nBreak",
            "payload-oxum",
        ] {
            let error = bag_info(&[field(label, "v")], &[]).expect_err(label);
            assert!(
                matches!(&error, BagError::InvalidLabel { label: l, .. } if l == label),
                "{label:?}: {error}"
            );
        }
        for value in ["two\nlines", "carriage\rreturn"] {
            assert_eq!(
                bag_info(&[field("Note", value)], &[]),
                Err(BagError::InvalidValue {
                    label: "Note".into()
                })
            );
        }
    }

    #[test]
    fn parse_bag_info_joins_continuation_lines_and_names_bad_lines() {
        let text = "Contact-Name: Jane\r\nExternal-Description: a long\n  wrapped\n\tvalue\n\n\
                    Bag-Count:1 of 2\nLabel-Only:\n  continued\n";
        assert_eq!(
            parse_bag_info(text).expect("parses"),
            vec![
                field("Contact-Name", "Jane"),
                field("External-Description", "a long wrapped value"),
                field("Bag-Count", "1 of 2"),
                field("Label-Only", "continued"),
            ]
        );
        let error = parse_bag_info("A: b\nno colon here\n").expect_err("no colon");
        assert!(
            matches!(error, BagError::BagInfoLine { line: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("no colon here"), "{error}");
        assert!(matches!(
            parse_bag_info("  continued\n"),
            Err(BagError::BagInfoLine { line: 1, .. })
        ));
        assert!(matches!(
            parse_bag_info("A: b\n: value\n"),
            Err(BagError::BagInfoLine { line: 2, .. })
        ));
    }

    fn standard_payload() -> Vec<PayloadFile> {
        vec![
            payload("data/blocks.bin", 'a', 2 * BLOCK_SIZE),
            payload("data/blockmap.tsv", 'b', 150),
            payload("data/image.sha256", 'c', 76),
        ]
    }

    #[test]
    fn tag_files_come_in_write_order_with_the_tag_manifest_last() {
        let info = vec![field("Source-Organization", "Example Corp IR")];
        let files = standard_payload();
        let extra = vec![
            tag("rebuild.sh", "#!/bin/sh\n"),
            tag("README.txt", "read me\n"),
            tag("forensnap/custody.json", "{}"),
        ];
        let tags = tag_files(&info, &files, extra.clone()).expect("valid");
        let paths: Vec<&str> = tags.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "bagit.txt",
                "bag-info.txt",
                "manifest-sha256.txt",
                "rebuild.sh",
                "README.txt",
                "forensnap/custody.json",
                "tagmanifest-sha256.txt"
            ]
        );
        assert_eq!(tags[0].bytes, BAGIT_TXT.as_bytes());
        assert_eq!(
            tags[1].bytes,
            bag_info(&info, &files).expect("valid").into_bytes()
        );
        let manifest_text = String::from_utf8(tags[2].bytes.clone()).expect("utf-8");
        let listed = parse_manifest(&manifest_text).expect("parses");
        let mut expected: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(&tags[3..6], &extra[..]);

        let (last, others) = tags.split_last().expect("non-empty");
        let tag_manifest = String::from_utf8(last.bytes.clone()).expect("utf-8");
        assert!(tag_manifest.contains("  bagit.txt\n"), "two spaces");
        let mut expected: Vec<(String, String)> = others
            .iter()
            .map(|t| (t.path.clone(), sha256_hex(&t.bytes)))
            .collect();
        expected.sort();
        assert_eq!(parse_manifest(&tag_manifest).expect("parses"), expected);
    }

    #[test]
    fn tag_files_refuse_misplaced_reserved_and_colliding_paths() {
        let files = standard_payload();
        let refuse = |payload: &[PayloadFile], extra: Vec<TagFile>| {
            tag_files(&[], payload, extra).expect_err("refused")
        };
        assert_eq!(
            refuse(&[payload("blocks.bin", 'a', 1)], vec![]),
            BagError::NotPayload {
                path: "blocks.bin".into()
            }
        );
        assert_eq!(
            refuse(&[payload("database/x", 'a', 1)], vec![]),
            BagError::NotPayload {
                path: "database/x".into()
            }
        );
        assert!(matches!(
            refuse(&[payload("data/../x", 'a', 1)], vec![]),
            BagError::InvalidPath { .. }
        ));
        for path in ["data/rebuild.sh", "data"] {
            assert_eq!(
                refuse(&files, vec![tag(path, "x")]),
                BagError::TagInPayload { path: path.into() }
            );
        }
        for path in [
            "bagit.txt",
            "bag-info.txt",
            "manifest-sha256.txt",
            "manifest-md5.txt",
            "tagmanifest-sha256.txt",
            "fetch.txt",
        ] {
            assert_eq!(
                refuse(&files, vec![tag(path, "x")]),
                BagError::ReservedTag { path: path.into() }
            );
        }
        assert!(matches!(
            refuse(&files, vec![tag("/etc/cron.d/x", "x")]),
            BagError::InvalidPath { .. }
        ));
        assert_eq!(
            refuse(&files, vec![tag("README.txt", "a"), tag("README.txt", "b")]),
            BagError::Duplicate {
                path: "README.txt".into()
            }
        );
        assert_eq!(
            refuse(&files, vec![tag("notes", "a"), tag("notes/x.txt", "b")]),
            BagError::FileAndDirectory {
                file: "notes".into(),
                inside: "notes/x.txt".into()
            }
        );
        let mut twice = files.clone();
        twice.push(files[0].clone());
        assert_eq!(
            refuse(&twice, vec![]),
            BagError::Duplicate {
                path: "data/blocks.bin".into()
            }
        );
        let mut bad_digest = files.clone();
        bad_digest[1].sha256 = "not hex".into();
        assert!(matches!(
            refuse(&bad_digest, vec![]),
            BagError::InvalidDigest { .. }
        ));
        assert!(matches!(
            tag_files(&[field("Bad:Label", "x")], &files, vec![]),
            Err(BagError::InvalidLabel { .. })
        ));
    }

    #[test]
    fn sha256sum_lines_match_coreutils() {
        assert_eq!(
            sha256sum_line(&hex_of('a'), IMAGE_NAME),
            format!("{}  disk.raw\n", hex_of('a'))
        );
        assert_eq!(
            sha256sum_line(&hex_of('a'), "a\\b\nc"),
            format!("\\{}  a\\\\b\\nc\n", hex_of('a'))
        );
    }

    // ---- rebuild.sh, really executed ----

    /// A directory under the system temp dir, removed when dropped (also when a test fails).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "forensnap-bag-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(dir.join("data")).expect("create scratch dir");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const DATA: &str = "data/blocks.bin";
    const MAP: &str = "data/blockmap.tsv";

    /// Distinct bytes per block, none of them all zero.
    fn block_bytes(index: u64) -> Vec<u8> {
        let size = usize::try_from(BLOCK_SIZE).expect("fits");
        (0..size)
            .map(|j| (index as u8).wrapping_mul(31).wrapping_add(j as u8) | 1)
            .collect()
    }

    /// Writes blocks.bin, blockmap.tsv, image.sha256 and rebuild.sh for a volume of
    /// `volume_bytes` with data in `stored`; returns the expected raw image.
    fn write_bag(dir: &Path, volume_bytes: u64, stored: &[u64]) -> Vec<u8> {
        let mut image = vec![0u8; usize::try_from(volume_bytes).expect("fits")];
        let mut blocks = Vec::new();
        let mut map = format!("{BLOCK_MAP_HEADER}\n");
        for &index in stored {
            let bytes = block_bytes(index);
            let start = usize::try_from(index * BLOCK_SIZE).expect("fits");
            let end = image.len().min(start + bytes.len());
            image[start..end].copy_from_slice(&bytes[..end - start]);
            let entry = BlockMapEntry {
                index,
                offset: index * BLOCK_SIZE,
                length: BLOCK_SIZE,
                object_offset: blocks.len() as u64,
                sha256: sha256_hex(&bytes),
                aws_checksum: "q83vEjRWeJA=".into(),
            };
            map.push_str(&entry.to_line());
            map.push('\n');
            blocks.extend_from_slice(&bytes);
        }
        let image_sha256 = sha256_hex(&image);
        std::fs::write(dir.join(DATA), &blocks).expect("write blocks");
        std::fs::write(dir.join(MAP), map).expect("write map");
        std::fs::write(
            dir.join(IMAGE_SHA256_PATH),
            sha256sum_line(&image_sha256, IMAGE_NAME),
        )
        .expect("write image.sha256");
        std::fs::write(
            dir.join(REBUILD_SCRIPT_PATH),
            rebuild_script(volume_bytes, DATA, MAP, &image_sha256),
        )
        .expect("write rebuild.sh");
        image
    }

    /// dash when installed (the strictest common sh), else sh.
    fn shell() -> &'static str {
        if Path::new("/bin/dash").exists() {
            "/bin/dash"
        } else {
            "sh"
        }
    }

    fn run(dir: &Path, args: &[&str]) -> Output {
        Command::new(shell())
            .arg(REBUILD_SCRIPT_PATH)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run the shell")
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Rebuilds to a file and to stdout and checks both against `image`.
    fn assert_rebuilds(dir: &Path, image: &[u8]) {
        let file = run(dir, &["disk.raw"]);
        assert!(file.status.success(), "stderr: {}", text(&file.stderr));
        assert!(text(&file.stdout).contains("sha256sum -c data/image.sha256"));
        let rebuilt = std::fs::read(dir.join("disk.raw")).expect("disk.raw written");
        assert_eq!(rebuilt.len(), image.len());
        assert!(rebuilt == image, "disk.raw differs from the volume");

        let stream = run(dir, &["-"]);
        assert!(stream.status.success(), "stderr: {}", text(&stream.stderr));
        assert_eq!(stream.stdout.len(), image.len());
        assert!(stream.stdout == image, "streamed image differs");

        if Path::new("/usr/bin/sha256sum").exists() || Path::new("/bin/sha256sum").exists() {
            let check = Command::new("sha256sum")
                .args(["-c", IMAGE_SHA256_PATH])
                .current_dir(dir)
                .output()
                .expect("run sha256sum");
            assert!(check.status.success(), "{}", text(&check.stdout));
        }
    }

    #[test]
    fn rebuild_script_rebuilds_scattered_blocks_byte_for_byte() {
        let scratch = Scratch::new("scattered");
        let image = write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        assert_rebuilds(&scratch.0, &image);
        let stream = run(&scratch.0, &["stream"]);
        assert!(stream.status.success() && stream.stdout == image);
    }

    #[test]
    fn rebuild_script_rebuilds_a_volume_whose_only_data_is_its_last_block() {
        let scratch = Scratch::new("last");
        let image = write_bag(&scratch.0, 16 * BLOCK_SIZE, &[15]);
        assert_rebuilds(&scratch.0, &image);
    }

    #[test]
    fn rebuild_script_rebuilds_an_all_zero_volume_without_a_blocks_object() {
        let scratch = Scratch::new("zeros");
        let image = write_bag(&scratch.0, 8 * BLOCK_SIZE, &[]);
        assert!(image.iter().all(|&b| b == 0));
        // With nothing stored there may be no object at all; the script must not need it.
        std::fs::remove_file(scratch.0.join(DATA)).expect("remove blocks.bin");
        assert_rebuilds(&scratch.0, &image);
    }

    #[test]
    fn rebuild_script_handles_a_volume_that_is_not_whole_blocks() {
        // Not an EBS shape, but the script must still give exactly VOLUME_BYTES bytes.
        let scratch = Scratch::new("tail");
        let image = write_bag(&scratch.0, 5 * BLOCK_SIZE + 4096, &[1, 4, 5]);
        assert_rebuilds(&scratch.0, &image);
        let scratch = Scratch::new("tail-zero");
        let image = write_bag(&scratch.0, 5 * BLOCK_SIZE + 512, &[0, 1]);
        assert_rebuilds(&scratch.0, &image);
    }

    #[cfg(unix)]
    #[test]
    fn rebuild_script_runs_one_dd_per_run_of_consecutive_blocks() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("runs");
        let image = write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        let real_dd = ["/bin/dd", "/usr/bin/dd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dd installed");
        let bin = scratch.0.join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let wrapper = bin.join("dd");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$DD_LOG\"\nexec {real_dd} \"$@\"\n"),
        )
        .expect("write dd wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let log = scratch.0.join("dd.log");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new(shell())
            .args([REBUILD_SCRIPT_PATH, "disk.raw"])
            .current_dir(&scratch.0)
            .env("PATH", path)
            .env("DD_LOG", &log)
            .output()
            .expect("run the shell");
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(std::fs::read(scratch.0.join("disk.raw")).expect("written") == image);
        let calls = std::fs::read_to_string(&log).expect("dd log");
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(
            calls,
            [
                "if=data/blocks.bin of=disk.raw bs=524288 skip=0 seek=0 count=3 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=3 seek=10 count=2 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=5 seek=40 count=1 conv=notrunc",
                "if=data/blocks.bin of=disk.raw bs=524288 skip=6 seek=63 count=1 conv=notrunc",
                "if=/dev/null of=disk.raw bs=1 seek=33554432",
            ]
        );
    }

    /// The program `name` if it is on PATH.
    fn on_path(name: &str) -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    }

    fn assert_tool_passes(dir: &Path, program: &Path, args: &[&str]) {
        let output = Command::new(program)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run the checker");
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            text(&output.stdout),
            text(&output.stderr)
        );
    }

    #[test]
    fn a_written_bag_passes_sha256sum_shasum_and_bagit_python() {
        // What an auditor runs. Each checker is used when installed (bagit.py rarely is).
        let scratch = Scratch::new("bag");
        let dir = &scratch.0;
        let image = write_bag(dir, 16 * BLOCK_SIZE, &[0, 3, 4, 15]);
        std::fs::write(dir.join("data/notes with spaces.txt"), "n\n").expect("write");
        let payload: Vec<PayloadFile> =
            [DATA, MAP, IMAGE_SHA256_PATH, "data/notes with spaces.txt"]
                .into_iter()
                .map(|path| {
                    let bytes = std::fs::read(dir.join(path)).expect("read payload");
                    PayloadFile {
                        path: path.to_string(),
                        sha256: sha256_hex(&bytes),
                        size: bytes.len() as u64,
                    }
                })
                .collect();
        let script = std::fs::read(dir.join(REBUILD_SCRIPT_PATH)).expect("read script");
        let extra = vec![
            TagFile {
                path: REBUILD_SCRIPT_PATH.into(),
                bytes: script,
            },
            tag("README.txt", "Evidence bag.\n"),
        ];
        let info = [field("Source-Organization", "Example Corp IR")];
        for file in tag_files(&info, &payload, extra).expect("valid bag") {
            std::fs::write(dir.join(&file.path), &file.bytes).expect("write tag file");
        }
        std::fs::write(dir.join("disk.raw"), &image).expect("write image");
        // sha256sum -c data/image.sha256 needs disk.raw in the bag root; bagit.py must not see it.
        if let Some(sha256sum) = on_path("sha256sum") {
            for file in [MANIFEST_PATH, TAG_MANIFEST_PATH, IMAGE_SHA256_PATH] {
                assert_tool_passes(dir, &sha256sum, &["--strict", "-c", file]);
            }
        }
        if let Some(shasum) = on_path("shasum") {
            for file in [MANIFEST_PATH, TAG_MANIFEST_PATH] {
                assert_tool_passes(dir, &shasum, &["-a", "256", "-c", file]);
            }
        }
        std::fs::remove_file(dir.join("disk.raw")).expect("remove image");
        if let Some(bagit) = on_path("bagit.py") {
            assert_tool_passes(dir, &bagit, &["--validate", "."]);
        }
    }

    /// Replaces line `line` (1-based, header included) of the block map.
    fn corrupt_map(dir: &Path, line: usize, replacement: &str) {
        let map = std::fs::read_to_string(dir.join(MAP)).expect("read map");
        let mut lines: Vec<String> = map.lines().map(str::to_string).collect();
        lines[line - 1] = replacement.to_string();
        std::fs::write(dir.join(MAP), lines.join("\n") + "\n").expect("write map");
    }

    fn assert_refused(dir: &Path, words: &str) {
        for args in [["disk.raw"], ["-"]] {
            let output = run(dir, &args);
            assert!(!output.status.success(), "{args:?} succeeded");
            let stderr = text(&output.stderr);
            assert!(stderr.contains(words), "{args:?}: {stderr}");
        }
    }

    #[test]
    fn rebuild_script_refuses_a_corrupted_block_map() {
        let line = |index: u64, offset: u64, object_offset: u64| {
            format!("{index}\t{offset}\t{BLOCK_SIZE}\t{object_offset}\tab\tq83v")
        };
        let cases = [
            // offset not index * BLOCK_SIZE
            (
                line(10, 10 * BLOCK_SIZE + 1, 3 * BLOCK_SIZE),
                "line 5: offset",
            ),
            // index going backwards
            (
                line(1, BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: index 1 does not follow",
            ),
            // repeated index
            (
                line(2, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: index 2 does not follow",
            ),
            // object offset inside a block
            (
                line(10, 10 * BLOCK_SIZE, 3 * BLOCK_SIZE + 7),
                "line 5: object_offset",
            ),
            // beyond the volume
            (
                line(64, 64 * BLOCK_SIZE, 3 * BLOCK_SIZE),
                "line 5: block 64 lies beyond",
            ),
            // octal trap and garbage
            (
                "010\t5242880\t524288\t0\tab\tq83v".to_string(),
                "leading zero",
            ),
            (
                "x\t0\t524288\t0\tab\tq83v".to_string(),
                "line 5: index is not a decimal",
            ),
            ("10\t5242880".to_string(), "line 5: length is not a decimal"),
        ];
        for (replacement, words) in cases {
            let scratch = Scratch::new("corrupt");
            write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
            corrupt_map(&scratch.0, 5, &replacement);
            assert_refused(&scratch.0, words);
            let stderr = text(&run(&scratch.0, &["disk.raw"]).stderr);
            assert!(stderr.contains("disk.raw is incomplete"), "{stderr}");
        }
    }

    #[test]
    fn rebuild_script_refuses_a_truncated_blocks_object() {
        let scratch = Scratch::new("short");
        write_bag(&scratch.0, 64 * BLOCK_SIZE, &[0, 1, 2, 10, 11, 40, 63]);
        let blocks = std::fs::read(scratch.0.join(DATA)).expect("read blocks");
        let short = blocks.len() - 100;
        std::fs::write(scratch.0.join(DATA), &blocks[..short]).expect("truncate");
        assert_refused(&scratch.0, "did not read 1 whole blocks");
    }

    #[test]
    fn rebuild_script_refuses_bad_invocations() {
        let scratch = Scratch::new("usage");
        write_bag(&scratch.0, 4 * BLOCK_SIZE, &[1]);
        let none = run(&scratch.0, &[]);
        assert!(!none.status.success() && text(&none.stderr).contains("usage"));
        let device = run(&scratch.0, &["/dev/null"]);
        assert!(!device.status.success());
        assert!(text(&device.stderr).contains("not a regular file"));
        let into_payload = run(&scratch.0, &["data/blocks.bin"]);
        assert!(!into_payload.status.success());
        assert!(text(&into_payload.stderr).contains("payload"));
        assert_eq!(
            std::fs::read(scratch.0.join(DATA)).expect("still there"),
            block_bytes(1),
            "the payload is untouched"
        );
        let elsewhere = Command::new(shell())
            .arg(scratch.0.join(REBUILD_SCRIPT_PATH))
            .arg("disk.raw")
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run the shell");
        assert!(!elsewhere.status.success());
        assert!(text(&elsewhere.stderr).contains("bag root"));
    }

    #[test]
    fn rebuild_script_quotes_what_it_embeds() {
        let script = rebuild_script(BLOCK_SIZE, "data/it's $(x).bin", MAP, "'; rm -rf /; '");
        assert!(
            script.contains(r#"DATA='data/it'\''s $(x).bin'"#),
            "{script}"
        );
        assert!(
            script.contains(r#"IMAGE_SHA256=''\''; rm -rf /; '\'''"#),
            "{script}"
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("\nset -eu\n"));
        let scratch = Scratch::new("syntax");
        std::fs::write(scratch.0.join(REBUILD_SCRIPT_PATH), &script).expect("write");
        let check = Command::new(shell())
            .args(["-n", REBUILD_SCRIPT_PATH])
            .current_dir(&scratch.0)
            .output()
            .expect("run the shell");
        assert!(check.status.success(), "{}", text(&check.stderr));
    }
}
