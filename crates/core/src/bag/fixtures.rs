//! Test-only builders shared by the bag modules' tests: manifest entries, payload files, bag-info
//! fields and tag files, and a scratch bag on disk (stored blocks, block map, `image.sha256` and
//! `rebuild.sh`) for the tests that run `rebuild.sh` or the auditor's checkers.

use std::path::{Path, PathBuf};

use super::{
    IMAGE_NAME, PayloadFile, REBUILD_SCRIPT_PATH, TagFile, rebuild_script, sha256sum_line,
};
use crate::custody::sha256_hex;
use crate::layout::{BLOCK_MAP_HEADER, BLOCK_SIZE, BlockMapEntry, IMAGE_SHA256_PATH};

pub(super) fn hex_of(byte: char) -> String {
    byte.to_string().repeat(64)
}

pub(super) fn entry(path: &str, byte: char) -> (String, String) {
    (path.to_string(), hex_of(byte))
}

pub(super) fn payload(path: &str, byte: char, size: u64) -> PayloadFile {
    PayloadFile {
        path: path.to_string(),
        sha256: hex_of(byte),
        size,
    }
}

pub(super) fn field(label: &str, value: &str) -> (String, String) {
    (label.to_string(), value.to_string())
}

pub(super) fn tag(path: &str, text: &str) -> TagFile {
    TagFile {
        path: path.to_string(),
        bytes: text.as_bytes().to_vec(),
    }
}

// ---- a bag on disk, for tests that run rebuild.sh or the auditor's checkers ----

/// A directory under the system temp dir, removed when dropped (also when a test fails).
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(name: &str) -> Scratch {
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

/// Where the scratch bag keeps the stored blocks and the block map.
pub(super) const DATA: &str = "data/blocks.bin";
/// See [`DATA`].
pub(super) const MAP: &str = "data/blockmap.tsv";

/// Distinct bytes per block, none of them all zero.
pub(super) fn block_bytes(index: u64) -> Vec<u8> {
    let size = usize::try_from(BLOCK_SIZE).expect("fits");
    (0..size)
        .map(|j| (index as u8).wrapping_mul(31).wrapping_add(j as u8) | 1)
        .collect()
}

/// Writes blocks.bin, blockmap.tsv, image.sha256 and rebuild.sh for a volume of
/// `volume_bytes` with data in `stored`; returns the expected raw image.
pub(super) fn write_bag(dir: &Path, volume_bytes: u64, stored: &[u64]) -> Vec<u8> {
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

/// Process output as text, for assertion messages.
pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
