//! Acquiring one snapshot: every listed block read and verified, streamed in index order into
//! one multipart object part by part, the full-image SHA-256 computed over the whole logical
//! volume (zero runs included), and a checkpoint written after every part so that a crashed run
//! resumes from the parts already stored without fetching them again.
//!
//! Memory is bounded by `window + channel_blocks + 2` blocks whatever the volume size: blocks
//! are fetched at most `window` at a time (in order), handed to the part upload through a
//! channel of `channel_blocks`, and nothing else holds block data. See
//! `docs/acquisition-design.md` for the layout.

use base64::Engine as _;
use forensnap_core::hashing::{ImageHasher, Sha256Checkpoint};
use forensnap_core::layout::{
    BLOCK_MAP_HEADER, BLOCK_SIZE, BlockMapEntry, TooLarge, blocks_per_part,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::fetch::{FetchError, FetchPolicy, fetch_verified};
use crate::limit::AdaptiveLimit;
use crate::listing::Lister;
use crate::sink::{EvidenceSink, SinkError, StoredPart};
use crate::source::{BlockSource, ListedBlock, SourceError};

/// Block-map text is uploaded in parts of this size (S3's minimum is 5 MiB).
const BLOCK_MAP_PART: usize = 8 * 1024 * 1024;

/// Tuning of one acquisition.
#[derive(Debug, Clone, Copy)]
pub struct AcquireOptions {
    /// Blocks fetched ahead of the upload at most (the reader's share of memory).
    pub window: usize,
    /// Blocks queued between reader and upload.
    pub channel_blocks: usize,
    /// ListSnapshotBlocks page size.
    pub list_page: u32,
    /// Block read retries.
    pub policy: FetchPolicy,
}

impl Default for AcquireOptions {
    fn default() -> Self {
        AcquireOptions {
            window: 64,
            channel_blocks: 4,
            list_page: 10_000,
            policy: FetchPolicy::default(),
        }
    }
}

/// What was acquired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// Snapshot read.
    pub snapshot_id: String,
    /// Logical volume size.
    pub volume_bytes: u64,
    /// SHA-256 of the whole logical volume (= `sha256sum` of the raw image), hex.
    pub image_sha256: String,
    /// Blocks stored (listed by EBS).
    pub blocks_stored: u64,
    /// Parts of the data object.
    pub parts: u32,
    /// Key of the data object (listed blocks in index order).
    pub data_key: String,
    /// Key of the block map.
    pub block_map_key: String,
    /// Version of the data object.
    pub version_id: Option<String>,
    /// S3's composite checksum of the data object.
    pub composite_sha256: Option<String>,
    /// Parts found stored from an earlier run.
    pub resumed_parts: u32,
    /// Blocks fetched by this run.
    pub fetched_now: u64,
    /// Answers discarded for not matching AWS's checksum.
    pub discarded: u64,
}

/// The state after one part, stored beside the data (`acquisition/parts/NNNNN.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartCheckpoint {
    /// Part number.
    pub part: u32,
    /// Bytes in the part.
    pub size: u64,
    /// S3's SHA-256 of the part, base64.
    pub sha256: String,
    /// Offset of the part in the data object.
    pub object_offset: u64,
    /// Block index listing resumes at.
    pub next_index: u64,
    /// Image hash state after the part.
    pub image_hash: Sha256Checkpoint,
    /// The part's blocks: index, our SHA-256 (hex), AWS's checksum (base64).
    pub blocks: Vec<(u64, String, String)>,
}

/// Why an acquisition stopped; every variant names the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// Listing failed.
    #[error("listing blocks of snapshot {snapshot_id} from index {index}: {source}")]
    List {
        /// Snapshot.
        snapshot_id: String,
        /// Where listing was.
        index: u64,
        /// Cause.
        source: SourceError,
    },
    /// A block could not be read and verified.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Storing failed.
    #[error("storing {what} of snapshot {snapshot_id} at {key}: {source}")]
    Sink {
        /// Snapshot.
        snapshot_id: String,
        /// What was being stored.
        what: &'static str,
        /// Key.
        key: String,
        /// Cause.
        source: SinkError,
    },
    /// The volume cannot be one object.
    #[error("snapshot {snapshot_id}: {source}")]
    TooLarge {
        /// Snapshot.
        snapshot_id: String,
        /// Cause.
        source: TooLarge,
    },
    /// A stored checkpoint does not fit the stored parts.
    #[error("snapshot {snapshot_id}: checkpoint {key} is unusable: {why}")]
    Checkpoint {
        /// Snapshot.
        snapshot_id: String,
        /// Key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// Turns a sink failure while storing `what` at `key` into the engine's error.
fn sink_error(
    snapshot_id: &str,
    what: &'static str,
    key: &str,
) -> impl FnOnce(SinkError) -> AcquireError + use<> {
    let (snapshot_id, key) = (snapshot_id.to_string(), key.to_string());
    move |source| AcquireError::Sink {
        snapshot_id,
        what,
        key,
        source,
    }
}

fn part_key(prefix: &str, part: u32) -> String {
    format!("{prefix}acquisition/parts/{part:05}.json")
}

/// Acquire `snapshot_id` into `prefix` (`data/blocks.bin`, `data/blockmap.tsv`, checkpoints).
pub async fn acquire<S: BlockSource, K: EvidenceSink>(
    source: &S,
    sink: &K,
    limit: &AdaptiveLimit,
    options: &AcquireOptions,
    snapshot_id: &str,
    prefix: &str,
) -> Result<Acquired, AcquireError> {
    let data_key = format!("{prefix}data/blocks.bin");
    let block_map_key = format!("{prefix}data/blockmap.tsv");

    let first = Lister::new(snapshot_id, 0, 100)
        .next(source)
        .await
        .map_err(|source| AcquireError::List {
            snapshot_id: snapshot_id.into(),
            index: 0,
            source,
        })?;
    let volume_bytes = first.map(|p| p.volume_bytes).unwrap_or_default();
    let per_part = blocks_per_part(volume_bytes).map_err(|source| AcquireError::TooLarge {
        snapshot_id: snapshot_id.into(),
        source,
    })?;

    let (upload_id, stored) = sink.open_upload(&data_key).await.map_err(sink_error(
        snapshot_id,
        "the data upload",
        &data_key,
    ))?;
    let (mut parts, checkpoint) = resume_point(sink, snapshot_id, prefix, &stored).await?;
    let resumed_parts = parts.len() as u32;
    let mut hasher = match &checkpoint {
        Some(c) => ImageHasher::resume(volume_bytes, &c.image_hash).map_err(|e| {
            AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: part_key(prefix, c.part),
                why: e.to_string(),
            }
        })?,
        None => ImageHasher::new(volume_bytes),
    };
    let mut next_index = checkpoint.as_ref().map(|c| c.next_index).unwrap_or(0);
    let mut object_offset = checkpoint
        .as_ref()
        .map(|c| c.object_offset + c.size)
        .unwrap_or(0);
    let mut blocks_stored = object_offset / BLOCK_SIZE;
    let mut lister = Lister::new(snapshot_id, next_index, options.list_page);
    let mut queue: std::collections::VecDeque<ListedBlock> = Default::default();
    let mut listing_done = false;
    let (mut fetched_now, mut discarded) = (0u64, 0u64);

    loop {
        while queue.len() < per_part as usize && !listing_done {
            match lister.next(source).await {
                Ok(Some(page)) => queue.extend(page.blocks),
                Ok(None) => listing_done = true,
                Err(SourceError::Throttled(_) | SourceError::Transient(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(source) => {
                    return Err(AcquireError::List {
                        snapshot_id: snapshot_id.into(),
                        index: lister.position(),
                        source,
                    });
                }
            }
        }
        if queue.is_empty() {
            break;
        }
        let take = queue.len().min(per_part as usize);
        let blocks: Vec<ListedBlock> = queue.drain(..take).collect();
        let number = parts.len() as u32 + 1;
        let len = blocks.len() as u64 * BLOCK_SIZE;
        let (tx, rx) = mpsc::channel(options.channel_blocks.max(1));
        let upload = sink.upload_part(&data_key, &upload_id, number, len, rx);
        let produce = async {
            let mut entries = Vec::with_capacity(blocks.len());
            let mut reads = futures::stream::iter(
                blocks
                    .iter()
                    .map(|b| fetch_verified(source, limit, &options.policy, snapshot_id, b)),
            )
            .buffered(options.window.max(1));
            let mut h = hasher.clone();
            let mut part_discarded = 0;
            while let Some(read) = reads.next().await {
                let block = read?;
                part_discarded += u64::from(block.discarded);
                let offset = block.index * BLOCK_SIZE;
                let data = block.data;
                // The image hash is CPU work (zero runs included): off the async runtime.
                let (back, data, ordered) = tokio::task::spawn_blocking(move || {
                    let ordered = h.block(offset, &data);
                    (h, data, ordered)
                })
                .await
                .map_err(|e| FetchError::Failed {
                    snapshot_id: snapshot_id.into(),
                    index: block.index,
                    attempts: block.attempts,
                    last: SourceError::Transient(format!("hashing task: {e}")),
                })?;
                h = back;
                ordered.map_err(|e| FetchError::Failed {
                    snapshot_id: snapshot_id.into(),
                    index: block.index,
                    attempts: block.attempts,
                    last: SourceError::Fatal(format!("blocks listed out of order: {e}")),
                })?;
                entries.push((block.index, block.sha256, block.aws_checksum));
                if tx.send(data).await.is_err() {
                    break; // the upload failed; its error is reported below
                }
            }
            drop(tx);
            Ok::<_, AcquireError>((h, entries, part_discarded))
        };
        let (uploaded, produced) = tokio::join!(upload, produce);
        let (h, entries, part_discarded) = produced?;
        let part = uploaded.map_err(sink_error(snapshot_id, "a data part", &data_key))?;
        if part.size != len {
            return Err(AcquireError::Sink {
                snapshot_id: snapshot_id.into(),
                what: "a data part",
                key: data_key.clone(),
                source: SinkError(format!(
                    "part {number} holds {} bytes, {len} were sent",
                    part.size
                )),
            });
        }
        hasher = h;
        fetched_now += entries.len() as u64;
        discarded += part_discarded;
        next_index = entries.last().map(|e| e.0 + 1).unwrap_or(next_index);
        let checkpoint = PartCheckpoint {
            part: number,
            size: len,
            sha256: part.sha256.clone(),
            object_offset,
            next_index,
            image_hash: hasher.checkpoint(),
            blocks: entries,
        };
        let key = part_key(prefix, number);
        let bytes = serde_json::to_vec(&checkpoint).unwrap_or_default();
        sink.put(&key, bytes)
            .await
            .map_err(sink_error(snapshot_id, "a part checkpoint", &key))?;
        object_offset += len;
        blocks_stored += checkpoint.blocks.len() as u64;
        parts.push(part);
        tracing::info!(
            snapshot_id,
            part = number,
            blocks = checkpoint.blocks.len(),
            "part stored"
        );
    }

    let completed = if parts.is_empty() {
        // A volume with no data: S3 refuses an upload with no parts, so store an empty one.
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        let part = sink
            .upload_part(&data_key, &upload_id, 1, 0, rx)
            .await
            .map_err(sink_error(snapshot_id, "a data part", &data_key))?;
        parts.push(part);
        sink.complete(&data_key, &upload_id, &parts).await
    } else {
        sink.complete(&data_key, &upload_id, &parts).await
    }
    .map_err(sink_error(snapshot_id, "the data object", &data_key))?;
    if let Some(reported) = &completed.composite_sha256 {
        let ours = composite_sha256(&parts);
        if reported != &ours {
            return Err(AcquireError::Sink {
                snapshot_id: snapshot_id.into(),
                what: "the data object",
                key: data_key.clone(),
                source: SinkError(format!(
                    "S3 reports composite SHA-256 {reported}, the parts sent make {ours}"
                )),
            });
        }
    }
    write_block_map(
        sink,
        snapshot_id,
        prefix,
        &block_map_key,
        parts.len() as u32,
    )
    .await?;
    Ok(Acquired {
        snapshot_id: snapshot_id.into(),
        volume_bytes,
        image_sha256: hasher.finish(),
        blocks_stored,
        parts: parts.len() as u32,
        data_key,
        block_map_key,
        version_id: completed.version_id,
        composite_sha256: completed.composite_sha256,
        resumed_parts,
        fetched_now,
        discarded,
    })
}

/// The longest run of stored parts `1..=n` with a checkpoint for `n`.
async fn resume_point<K: EvidenceSink>(
    sink: &K,
    snapshot_id: &str,
    prefix: &str,
    stored: &[StoredPart],
) -> Result<(Vec<StoredPart>, Option<PartCheckpoint>), AcquireError> {
    let mut sorted = stored.to_vec();
    sorted.sort_by_key(|p| p.number);
    let contiguous: Vec<StoredPart> = sorted
        .into_iter()
        .enumerate()
        .take_while(|(i, p)| p.number == *i as u32 + 1)
        .map(|(_, p)| p)
        .collect();
    for n in (1..=contiguous.len()).rev() {
        let key = part_key(prefix, n as u32);
        let bytes = sink.get(&key).await.map_err(|source| AcquireError::Sink {
            snapshot_id: snapshot_id.into(),
            what: "a part checkpoint",
            key: key.clone(),
            source,
        })?;
        let Some(bytes) = bytes else { continue };
        let checkpoint: PartCheckpoint =
            serde_json::from_slice(&bytes).map_err(|e| AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: key.clone(),
                why: e.to_string(),
            })?;
        let part = &contiguous[n - 1];
        if checkpoint.size != part.size || checkpoint.sha256 != part.sha256 {
            continue; // the part was uploaded again after this checkpoint: not trustworthy
        }
        return Ok((contiguous[..n].to_vec(), Some(checkpoint)));
    }
    Ok((Vec::new(), None))
}

/// Assemble the block map from the part checkpoints, uploaded in 8 MiB parts (bounded memory).
async fn write_block_map<K: EvidenceSink>(
    sink: &K,
    snapshot_id: &str,
    prefix: &str,
    key: &str,
    parts: u32,
) -> Result<(), AcquireError> {
    let (upload_id, _) = sink.open_upload(key).await.map_err(sink_error(
        snapshot_id,
        "the block map upload",
        key,
    ))?;
    let mut stored = Vec::new();
    let mut buffer = format!("{BLOCK_MAP_HEADER}\n").into_bytes();
    let mut object_offset = 0;
    for n in 1..=parts {
        let checkpoint_key = part_key(prefix, n);
        let Some(bytes) = sink.get(&checkpoint_key).await.map_err(sink_error(
            snapshot_id,
            "the block map",
            &checkpoint_key,
        ))?
        else {
            continue; // the empty part of an empty volume has no checkpoint
        };
        let checkpoint: PartCheckpoint =
            serde_json::from_slice(&bytes).map_err(|e| AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: checkpoint_key.clone(),
                why: e.to_string(),
            })?;
        for (index, sha256, aws_checksum) in checkpoint.blocks {
            let entry = BlockMapEntry {
                index,
                offset: index * BLOCK_SIZE,
                length: BLOCK_SIZE,
                object_offset,
                sha256,
                aws_checksum,
            };
            object_offset += BLOCK_SIZE;
            buffer.extend_from_slice(entry.to_line().as_bytes());
            buffer.push(b'\n');
        }
        if buffer.len() >= BLOCK_MAP_PART {
            let chunk = std::mem::take(&mut buffer);
            stored.push(
                upload_chunk(sink, key, &upload_id, stored.len() as u32 + 1, chunk)
                    .await
                    .map_err(sink_error(snapshot_id, "the block map", key))?,
            );
        }
    }
    if !buffer.is_empty() || stored.is_empty() {
        stored.push(
            upload_chunk(sink, key, &upload_id, stored.len() as u32 + 1, buffer)
                .await
                .map_err(sink_error(snapshot_id, "the block map", key))?,
        );
    }
    sink.complete(key, &upload_id, &stored)
        .await
        .map_err(sink_error(snapshot_id, "the block map", key))?;
    Ok(())
}

async fn upload_chunk<K: EvidenceSink>(
    sink: &K,
    key: &str,
    upload_id: &str,
    number: u32,
    chunk: Vec<u8>,
) -> Result<StoredPart, SinkError> {
    let (tx, rx) = mpsc::channel(1);
    let len = chunk.len() as u64;
    let send = async move {
        let _ = tx.send(chunk).await;
    };
    let (part, ()) = tokio::join!(sink.upload_part(key, upload_id, number, len, rx), send);
    part
}

/// S3's composite checksum of a multipart object: base64(SHA-256(part digests)) + "-N".
pub fn composite_sha256(parts: &[StoredPart]) -> String {
    let mut digests = Vec::with_capacity(parts.len() * 32);
    for part in parts {
        digests.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&part.sha256)
                .unwrap_or_default(),
        );
    }
    format!(
        "{}-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&digests)),
        parts.len()
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::memory::MemorySource;
    use crate::memsink::MemorySink;

    fn options() -> AcquireOptions {
        AcquireOptions {
            window: 4,
            channel_blocks: 2,
            list_page: 100,
            policy: FetchPolicy {
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(2),
                ..FetchPolicy::default()
            },
        }
    }

    fn expected_object(source: &MemorySource, indexes: &[u64]) -> Vec<u8> {
        indexes.iter().flat_map(|&i| source.block(i)).collect()
    }

    #[tokio::test]
    async fn the_image_hash_equals_sha256sum_and_the_object_holds_the_listed_blocks() {
        let indexes = [3u64, 5, 6, 40, 63];
        let source = MemorySource::pattern(BLOCK_SIZE, 64, &indexes);
        source.corrupt(5, 2);
        source.throttle_next(3);
        let sink = MemorySink::default();
        let limit = AdaptiveLimit::new(2, 8, 10_000.0);
        let got = acquire(
            &source,
            &sink,
            &limit,
            &options(),
            "snap-1",
            "cases/C/evidence/v1/",
        )
        .await
        .expect("acquired");
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(source.raw_image()))
        );
        assert_eq!((got.blocks_stored, got.parts, got.discarded), (5, 1, 2));
        let object = sink
            .object("cases/C/evidence/v1/data/blocks.bin")
            .expect("object");
        assert_eq!(
            object,
            expected_object(&source, &indexes),
            "no corrupted byte stored"
        );
        let map = String::from_utf8(
            sink.object("cases/C/evidence/v1/data/blockmap.tsv")
                .expect("map"),
        )
        .expect("utf8");
        let entries: Vec<BlockMapEntry> = map
            .lines()
            .skip(1)
            .map(|l| BlockMapEntry::from_line(l).expect("line"))
            .collect();
        assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), indexes);
        for (n, e) in entries.iter().enumerate() {
            assert_eq!(e.object_offset, n as u64 * BLOCK_SIZE);
            assert_eq!(e.sha256, hex::encode(Sha256::digest(source.block(e.index))));
        }
        assert_eq!(sink.open_uploads(), 0, "no multipart upload left open");
    }

    #[tokio::test]
    async fn a_crashed_run_resumes_from_stored_parts_with_the_same_hashes() {
        // 25 data blocks, 10 per part (1 GiB volume): parts of 10, 10 and 5 blocks.
        let indexes: Vec<u64> = (0..25).map(|i| i * 70 + 1).collect();
        let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
        let uninterrupted = {
            let sink = MemorySink::default();
            let limit = AdaptiveLimit::new(4, 8, 10_000.0);
            acquire(&source, &sink, &limit, &options(), "snap-1", "p/")
                .await
                .expect("acquired")
        };
        let sink = MemorySink::default();
        sink.fail_part_once(3);
        let limit = AdaptiveLimit::new(4, 8, 10_000.0);
        let err = acquire(&source, &sink, &limit, &options(), "snap-1", "p/")
            .await
            .expect_err("part 3 fails");
        assert!(
            err.to_string().contains("snap-1") && err.to_string().contains("UploadPart 3"),
            "{err}"
        );
        assert_eq!(
            sink.open_uploads(),
            1,
            "the upload stays open for the resume"
        );

        let before = source.gets.load(std::sync::atomic::Ordering::SeqCst);
        let resumed = acquire(&source, &sink, &limit, &options(), "snap-1", "p/")
            .await
            .expect("resumed");
        let fetched = source.gets.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert_eq!(resumed.resumed_parts, 2);
        assert_eq!(
            (resumed.fetched_now, fetched),
            (5, 5),
            "only the missing blocks are fetched again"
        );
        assert_eq!(resumed.image_sha256, uninterrupted.image_sha256);
        assert_eq!(resumed.composite_sha256, uninterrupted.composite_sha256);
        assert_eq!(
            sink.object("p/data/blocks.bin").expect("object"),
            expected_object(&source, &indexes)
        );
        assert_eq!(sink.open_uploads(), 0);
    }

    #[tokio::test]
    async fn a_volume_with_data_only_in_its_last_block_and_an_empty_one() {
        let source = MemorySource::pattern(BLOCK_SIZE, 2048, &[2047]);
        let sink = MemorySink::default();
        let limit = AdaptiveLimit::new(4, 8, 10_000.0);
        let got = acquire(&source, &sink, &limit, &options(), "snap-1", "a/")
            .await
            .expect("acquired");
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(source.raw_image()))
        );

        let empty = MemorySource::pattern(BLOCK_SIZE, 16, &[]);
        let got = acquire(&empty, &sink, &limit, &options(), "snap-2", "b/")
            .await
            .expect("acquired");
        assert_eq!(
            got.image_sha256,
            hex::encode(Sha256::digest(vec![0u8; 16 * BLOCK_SIZE as usize]))
        );
        assert_eq!(got.blocks_stored, 0);
    }
}
