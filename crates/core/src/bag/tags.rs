//! The files of a bag as forensnap writes them: [`PayloadFile`]s under `data/` as hashed by the
//! caller, [`TagFile`]s with their bytes, and [`tag_files`], which checks that they form one
//! directory tree and returns every tag file in write order, the tag manifest last.

use super::info::bag_info;
use super::manifest::manifest;
use super::paths::{check_distinct, check_path, is_reserved_tag, is_under_payload};
use super::{BAG_INFO_PATH, BAGIT_PATH, BAGIT_TXT, BagError, MANIFEST_PATH, TAG_MANIFEST_PATH};
use crate::custody::sha256_hex;

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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::bag::fixtures::{DATA, MAP, Scratch, field, payload, tag, text, write_bag};
    use crate::bag::shell::{find_program, require_program};
    use crate::bag::{REBUILD_SCRIPT_PATH, parse_manifest};
    use crate::layout::{BLOCK_SIZE, IMAGE_SHA256_PATH};

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

    // ---- what an auditor runs on a written bag ----

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
        // What an auditor runs. sha256sum is required; shasum (Debian: perl) and bagit.py (PyPI,
        // rarely installed) are used when installed.
        let sha256sum = require_program("sha256sum", "coreutils");
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
        for file in [MANIFEST_PATH, TAG_MANIFEST_PATH, IMAGE_SHA256_PATH] {
            assert_tool_passes(dir, &sha256sum, &["--strict", "-c", file]);
        }
        if let Some(shasum) = find_program("shasum") {
            for file in [MANIFEST_PATH, TAG_MANIFEST_PATH] {
                assert_tool_passes(dir, &shasum, &["-a", "256", "-c", file]);
            }
        }
        std::fs::remove_file(dir.join("disk.raw")).expect("remove image");
        if let Some(bagit) = find_program("bagit.py") {
            assert_tool_passes(dir, &bagit, &["--validate", "."]);
        }
    }
}
