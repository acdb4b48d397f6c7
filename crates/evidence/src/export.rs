//! Exporting a volume item: its bag read back from the evidence store and streamed into a raw
//! (sparse) image file, every hash checked on the way: the tag manifest, the payload manifest,
//! each stored block against the block map, the data object and block map against the
//! manifest, and the image SHA-256 against `data/image.sha256`.
//!
//! The image is written to `<out>.partial` and renamed only when every check holds; on any
//! failure the partial file is removed, so an image at `<out>` is always a verified one.
//! Memory is bounded by one read chunk of the data object and one of the block map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forensnap_core::bag::{parse_bag_info, parse_manifest};
use forensnap_core::hashing::{ImageHasher, ResumableSha256};
use forensnap_core::layout::{
    BLOCK_MAP_PATH, BLOCK_SIZE, BlockMapEntry, IMAGE_SHA256_PATH, Layout,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::item::{TAG_MANIFEST, field};
use crate::progress::ByteProgress;
use forensnap_core::memory::IMAGE_PATH;
use forensnap_store::{CloudError, EvidenceRead};

/// Bytes of the data object read per request (16 blocks).
const DATA_CHUNK: u64 = 16 * BLOCK_SIZE;
/// Bytes of the block map read per request.
const MAP_CHUNK: u64 = 4 * 1024 * 1024;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exported {
    /// The image file.
    pub path: PathBuf,
    /// Its size (the volume size).
    pub volume_bytes: u64,
    /// Its SHA-256, hex, equal to the bag's `data/image.sha256`.
    pub image_sha256: String,
    /// Stored blocks checked against the block map.
    pub blocks_checked: u64,
    /// The item's layout.
    pub layout: Layout,
    /// A memory item's LiME image (streamed whole, checked against the manifest), not a volume.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub memory: bool,
}

/// Why an export failed; the partial image was removed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error("reading {key}: {source}")]
    Read {
        /// The object.
        key: String,
        /// Cause.
        source: CloudError,
    },
    /// The bag is not what it says it is: evidence does not match its record.
    #[error("evidence item at {prefix}: {file}: {problem}")]
    Mismatch {
        /// The item.
        prefix: String,
        /// The file of the bag (and block index, when a block).
        file: String,
        /// What does not match.
        problem: String,
    },
    /// The output file.
    #[error("{path}: {problem}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        problem: String,
    },
}

struct Bag<'a, K> {
    sink: &'a K,
    prefix: &'a str,
}

impl<K: EvidenceRead> Bag<'_, K> {
    fn mismatch(&self, file: impl ToString, problem: impl ToString) -> ExportError {
        ExportError::Mismatch {
            prefix: self.prefix.into(),
            file: file.to_string(),
            problem: problem.to_string(),
        }
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, ExportError> {
        let key = format!("{}{path}", self.prefix);
        self.sink
            .get(&key)
            .await
            .map_err(|source| ExportError::Read {
                key: key.clone(),
                source,
            })?
            .ok_or_else(|| self.mismatch(path, "missing from the bag"))
    }

    async fn range(&self, path: &str, start: u64, len: u64) -> Result<Vec<u8>, ExportError> {
        let key = format!("{}{path}", self.prefix);
        let bytes = self
            .sink
            .get_range(&key, start, len)
            .await
            .map_err(|source| ExportError::Read {
                key: key.clone(),
                source,
            })?;
        if bytes.len() as u64 != len {
            return Err(self.mismatch(
                path,
                format!("{} bytes at offset {start}, {len} expected", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    /// A payload file's bytes, checked against `expected`.
    async fn checked_text_or_bytes(
        &self,
        path: &str,
        expected: &str,
    ) -> Result<Vec<u8>, ExportError> {
        let bytes = self.get(path).await?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != expected {
            return Err(self.mismatch(
                path,
                format!("SHA-256 {actual}, the manifest says {expected}"),
            ));
        }
        Ok(bytes)
    }

    /// A manifest's entries, each file checked against the digest `listed` gives for it.
    async fn checked_text(
        &self,
        path: &str,
        expected: Option<&str>,
    ) -> Result<String, ExportError> {
        let bytes = self.get(path).await?;
        if let Some(expected) = expected {
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != expected {
                return Err(self.mismatch(
                    path,
                    format!("SHA-256 {actual}, the manifest says {expected}"),
                ));
            }
        }
        String::from_utf8(bytes).map_err(|e| self.mismatch(path, format!("not UTF-8: {e}")))
    }
}

/// Stream the volume item at `prefix` into a raw image at `out` (see the module docs).
pub async fn export<K: EvidenceRead>(
    sink: &K,
    prefix: &str,
    out: &Path,
    progress: &dyn ByteProgress,
) -> Result<Exported, ExportError> {
    if tokio::fs::try_exists(out).await.unwrap_or(true) {
        return Err(ExportError::Output {
            path: out.into(),
            problem: "already exists (or cannot be checked); choose another --out or remove it"
                .into(),
        });
    }
    let partial = PathBuf::from(format!("{}.partial", out.display()));
    let bag = Bag { sink, prefix };
    let result = async {
        let view = open_bag(&bag).await?;
        let mut file =
            tokio::fs::File::create(&partial)
                .await
                .map_err(|e| ExportError::Output {
                    path: partial.clone(),
                    problem: format!("cannot create it: {e}"),
                })?;
        let memory = is_memory(&view);
        let checked = if memory {
            check_memory(&bag, &view, Some((&mut file, &partial)), progress).await?
        } else {
            check_volume(&bag, &view, Some((&mut file, &partial)), progress).await?
        };
        Ok(Exported {
            path: out.into(),
            volume_bytes: checked.volume_bytes,
            image_sha256: checked.image_sha256,
            blocks_checked: checked.blocks_checked,
            layout: checked.layout,
            memory,
        })
    }
    .await;
    match result {
        Ok(exported) => {
            tokio::fs::rename(&partial, out)
                .await
                .map_err(|e| ExportError::Output {
                    path: out.into(),
                    problem: format!(
                        "renaming the verified {} into place: {e}",
                        partial.display()
                    ),
                })?;
            Ok(exported)
        }
        Err(err) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(err)
        }
    }
}

/// A bag's tag files, each checked against the tag manifest.
#[derive(Debug, Clone)]
pub struct BagView {
    /// The tag manifest's entries: path -> SHA-256.
    pub tags: BTreeMap<String, String>,
    /// bag-info.txt fields.
    pub info: Vec<(String, String)>,
    /// The payload manifest's entries: path -> SHA-256.
    pub manifest: BTreeMap<String, String>,
}

/// What checking a volume's payload found (every hash matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeChecked {
    /// The image's size.
    pub volume_bytes: u64,
    /// Its SHA-256, hex.
    pub image_sha256: String,
    /// Stored blocks checked against the block map.
    pub blocks_checked: u64,
    /// The item's layout.
    pub layout: Layout,
}

/// Read the bag at `prefix`: the tag manifest, and every tag file it lists checked against it.
pub async fn read_bag<K: EvidenceRead>(reader: &K, prefix: &str) -> Result<BagView, ExportError> {
    open_bag(&Bag {
        sink: reader,
        prefix,
    })
    .await
}

/// Check every payload file of the bag at `prefix` against its manifest: a volume's data
/// object block by block against the block map and as a whole, its block map and image hash;
/// any other item's files by their SHA-256.
pub async fn check_payload<K: EvidenceRead>(
    reader: &K,
    prefix: &str,
    view: &BagView,
    progress: &dyn ByteProgress,
) -> Result<Option<VolumeChecked>, ExportError> {
    let bag = Bag {
        sink: reader,
        prefix,
    };
    if field(&view.info, "Volume-Bytes").is_some() {
        return check_volume(&bag, view, None, progress).await.map(Some);
    }
    for (path, expected) in &view.manifest {
        if is_memory(view) && path == IMAGE_PATH {
            // The image is streamed, never held whole.
            check_memory(&bag, view, None, progress).await?;
        } else {
            bag.checked_text_or_bytes(path, expected).await?;
        }
    }
    Ok(None)
}

fn is_memory(view: &BagView) -> bool {
    field(&view.info, "Evidence-Kind") == Some("memory")
}

/// Stream a memory item's image (`data/memory.lime`, `Memory-Bytes` long) in ranges, checking
/// its SHA-256 against the manifest, writing it to `out` if given.
async fn check_memory<K: EvidenceRead>(
    bag: &Bag<'_, K>,
    view: &BagView,
    mut out: Option<(&mut tokio::fs::File, &Path)>,
    progress: &dyn ByteProgress,
) -> Result<VolumeChecked, ExportError> {
    use futures::StreamExt;
    let io = |path: &Path, e: std::io::Error| ExportError::Output {
        path: path.into(),
        problem: e.to_string(),
    };
    let size: u64 = field(&view.info, "Memory-Bytes")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            bag.mismatch("bag-info.txt", "no numeric Memory-Bytes: not a memory item")
        })?;
    let expected = view.manifest.get(IMAGE_PATH).ok_or_else(|| {
        bag.mismatch("manifest-sha256.txt", format!("does not list {IMAGE_PATH}"))
    })?;
    let key = format!("{}{IMAGE_PATH}", bag.prefix);
    let mut hasher = Sha256::new();
    let mut reads = std::pin::pin!(crate::memory::chunks(bag.sink, &key, size));
    while let Some(read) = reads.next().await {
        let (start, bytes) = read.map_err(|source| ExportError::Read {
            key: key.clone(),
            source,
        })?;
        hasher.update(&bytes);
        if let Some((file, path)) = out.as_mut() {
            file.write_all(&bytes).await.map_err(|e| io(path, e))?;
        }
        progress.position(bag.prefix, start + bytes.len() as u64, size);
    }
    if let Some((file, path)) = out.as_mut() {
        file.sync_all().await.map_err(|e| io(path, e))?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != *expected {
        return Err(bag.mismatch(
            IMAGE_PATH,
            format!("SHA-256 {actual}, the manifest says {expected}"),
        ));
    }
    Ok(VolumeChecked {
        volume_bytes: size,
        image_sha256: actual,
        blocks_checked: 0,
        layout: Layout::Raw,
    })
}

async fn open_bag<K: EvidenceRead>(bag: &Bag<'_, K>) -> Result<BagView, ExportError> {
    // Tag files first: the tag manifest vouches for bag-info.txt and manifest-sha256.txt.
    let tag_manifest = bag.checked_text(TAG_MANIFEST, None).await?;
    let tags: BTreeMap<String, String> = parse_manifest(&tag_manifest)
        .map_err(|e| bag.mismatch(TAG_MANIFEST, e))?
        .into_iter()
        .collect();
    for path in ["bag-info.txt", "manifest-sha256.txt"] {
        if !tags.contains_key(path) {
            return Err(bag.mismatch(TAG_MANIFEST, format!("does not list {path}")));
        }
    }
    // Each tag file is read once: checked, and kept when it is one parsed below.
    let (mut info_text, mut manifest_text) = (String::new(), String::new());
    for (path, digest) in &tags {
        let text = bag.checked_text(path, Some(digest)).await?;
        match path.as_str() {
            "bag-info.txt" => info_text = text,
            "manifest-sha256.txt" => manifest_text = text,
            _ => {}
        }
    }
    let info = parse_bag_info(&info_text).map_err(|e| bag.mismatch("bag-info.txt", e))?;
    let manifest: BTreeMap<String, String> = parse_manifest(&manifest_text)
        .map_err(|e| bag.mismatch("manifest-sha256.txt", e))?
        .into_iter()
        .collect();
    Ok(BagView {
        tags,
        info,
        manifest,
    })
}

/// Stream a volume's data object, checking every hash, writing the image to `out` if given.
async fn check_volume<K: EvidenceRead>(
    bag: &Bag<'_, K>,
    view: &BagView,
    mut out: Option<(&mut tokio::fs::File, &Path)>,
    progress: &dyn ByteProgress,
) -> Result<VolumeChecked, ExportError> {
    let (info, manifest) = (&view.info, &view.manifest);
    let number = |label: &str| -> Result<u64, ExportError> {
        field(info, label)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                bag.mismatch(
                    "bag-info.txt",
                    format!("no numeric {label}: not a volume item"),
                )
            })
    };
    let volume_bytes = number("Volume-Bytes")?;
    let data_bytes = number("Data-Bytes")?;
    let map_bytes = number("Block-Map-Bytes")?;
    let layout = match field(info, "Layout") {
        Some("blocks") => Layout::Blocks,
        Some("raw") => Layout::Raw,
        other => {
            return Err(bag.mismatch(
                "bag-info.txt",
                format!("Layout {other:?} is neither blocks nor raw"),
            ));
        }
    };
    let listed = |path: &str| -> Result<String, ExportError> {
        manifest
            .get(path)
            .cloned()
            .ok_or_else(|| bag.mismatch("manifest-sha256.txt", format!("does not list {path}")))
    };
    let data_path = layout.data_path();
    let (data_sha256, map_sha256) = (listed(data_path)?, listed(BLOCK_MAP_PATH)?);
    let image_line = bag
        .checked_text(IMAGE_SHA256_PATH, Some(&listed(IMAGE_SHA256_PATH)?))
        .await?;
    let expected_image = image_line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();

    let io = |path: &Path, e: std::io::Error| ExportError::Output {
        path: path.into(),
        problem: format!("writing the image: {e}"),
    };
    let mut map = MapReader::new(bag, map_bytes);
    let mut image = ImageHasher::new(volume_bytes);
    let mut object = ResumableSha256::new();
    let mut pending = map.next().await?;
    let mut blocks_checked = 0u64;
    let mut offset = 0u64;
    while offset < data_bytes {
        let len = DATA_CHUNK.min(data_bytes - offset);
        let chunk = bag.range(data_path, offset, len).await?;
        let (chunk, hashed) = tokio::task::spawn_blocking(move || {
            let mut object = object;
            object.update(&chunk);
            (chunk, object)
        })
        .await
        .map_err(|e| bag.mismatch(data_path, format!("hashing task: {e}")))?;
        object = hashed;
        for (n, block) in chunk.chunks(BLOCK_SIZE as usize).enumerate() {
            let at = offset + n as u64 * BLOCK_SIZE;
            // Which volume block these bytes are: the block map says so for the blocks layout;
            // in the raw layout the object is the volume.
            let entry = match &pending {
                Some(e) if e.object_offset == at => Some(e.clone()),
                _ => None,
            };
            let volume_offset = match (layout, &entry) {
                (Layout::Raw, _) => at,
                (Layout::Blocks, Some(e)) => e.offset,
                (Layout::Blocks, None) => {
                    return Err(bag.mismatch(
                        BLOCK_MAP_PATH,
                        format!("no entry for byte {at} of {data_path}"),
                    ));
                }
            };
            if let Some(e) = &entry {
                let actual = hex::encode(Sha256::digest(block));
                if actual != e.sha256 {
                    return Err(bag.mismatch(
                        format!("{data_path} block {}", e.index),
                        format!("SHA-256 {actual}, the block map says {}", e.sha256),
                    ));
                }
                blocks_checked += 1;
                pending = map.next().await?;
            }
            image
                .block(volume_offset, block)
                .map_err(|e| bag.mismatch(BLOCK_MAP_PATH, e))?;
            if let Some((file, path)) = out.as_mut()
                && (entry.is_some() || block.iter().any(|&b| b != 0))
            {
                file.seek(std::io::SeekFrom::Start(volume_offset))
                    .await
                    .map_err(|e| io(path, e))?;
                file.write_all(block).await.map_err(|e| io(path, e))?;
            }
            progress.position(bag.prefix, volume_offset + block.len() as u64, volume_bytes);
        }
        offset += len;
    }
    if let Some(e) = pending {
        return Err(bag.mismatch(
            BLOCK_MAP_PATH,
            format!("block {} is listed but not in {data_path}", e.index),
        ));
    }
    if let Some((file, path)) = out.as_mut() {
        file.set_len(volume_bytes).await.map_err(|e| io(path, e))?;
        file.sync_all().await.map_err(|e| io(path, e))?;
    }
    progress.position(bag.prefix, volume_bytes, volume_bytes);
    let checks = [
        (data_path, object.finalize_hex(), data_sha256),
        (BLOCK_MAP_PATH, map.finish(), map_sha256),
        (IMAGE_SHA256_PATH, image.finish(), expected_image),
    ];
    let mut image_sha256 = String::new();
    for (path, actual, expected) in checks {
        if actual != expected {
            return Err(bag.mismatch(
                path,
                format!("SHA-256 {actual}, the bag records {expected}"),
            ));
        }
        image_sha256 = actual;
    }
    if let Some(recorded) = field(info, "Image-SHA256").filter(|r| *r != image_sha256) {
        return Err(bag.mismatch(
            "bag-info.txt",
            format!("Image-SHA256 {recorded}, the image is {image_sha256}"),
        ));
    }
    Ok(VolumeChecked {
        volume_bytes,
        image_sha256,
        blocks_checked,
        layout,
    })
}

/// The block map read in bounded ranges, hashed as it goes.
struct MapReader<'a, 'b, K> {
    bag: &'a Bag<'b, K>,
    size: u64,
    read: u64,
    text: String,
    lines: std::collections::VecDeque<String>,
    hash: Sha256,
    line_number: u64,
}

impl<'a, 'b, K: EvidenceRead> MapReader<'a, 'b, K> {
    fn new(bag: &'a Bag<'b, K>, size: u64) -> Self {
        MapReader {
            bag,
            size,
            read: 0,
            text: String::new(),
            lines: Default::default(),
            hash: Sha256::new(),
            line_number: 0,
        }
    }

    /// The next entry, in order.
    async fn next(&mut self) -> Result<Option<BlockMapEntry>, ExportError> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                self.line_number += 1;
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                return BlockMapEntry::from_line(&line).map(Some).ok_or_else(|| {
                    self.bag.mismatch(
                        BLOCK_MAP_PATH,
                        format!("line {} is not a block map entry", self.line_number),
                    )
                });
            }
            if self.read >= self.size {
                if !self.text.is_empty() {
                    self.lines.push_back(std::mem::take(&mut self.text));
                    continue;
                }
                return Ok(None);
            }
            let len = MAP_CHUNK.min(self.size - self.read);
            let bytes = self.bag.range(BLOCK_MAP_PATH, self.read, len).await?;
            self.read += len;
            self.hash.update(&bytes);
            self.text.push_str(
                &String::from_utf8(bytes)
                    .map_err(|e| self.bag.mismatch(BLOCK_MAP_PATH, format!("not UTF-8: {e}")))?,
            );
            if let Some(end) = self.text.rfind('\n') {
                let rest = self.text.split_off(end + 1);
                self.lines.extend(self.text.lines().map(str::to_string));
                self.text = rest;
            }
        }
    }

    /// The block map's SHA-256 (after every entry was read).
    fn finish(self) -> String {
        hex::encode(self.hash.finalize())
    }
}
