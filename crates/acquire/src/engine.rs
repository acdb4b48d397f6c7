//! Acquiring one snapshot: every listed block read and verified, streamed in index order into
//! one multipart object part by part, the full-image SHA-256 computed over the whole logical
//! volume (zero runs included), and a checkpoint written after every part so that a crashed run
//! resumes from the parts already stored without fetching them again.
//!
//! Two layouts ([`Layout`]): `blocks` stores only the listed blocks (`data/blocks.bin`), `raw`
//! the whole image (`data/disk.raw`, zero runs written). Both give the same image SHA-256 and
//! the same block map (`data/blockmap.tsv`). When everything is stored, a completion marker
//! (`acquisition/complete.json`, the [`Acquired`] record) makes a later run of the case return
//! at once instead of acquiring again; a crash between CompleteMultipartUpload and the marker is
//! recognised by the completed object's composite checksum matching the part checkpoints.
//!
//! Memory is bounded by `window + channel_blocks + 2` blocks whatever the volume size: blocks
//! are fetched at most `window` at a time (in order), handed to the part upload through a
//! channel of `channel_blocks`, and nothing else holds block data. See
//! `docs/acquisition-design.md` for the layout.

use std::collections::VecDeque;

use forensnap_core::ItemLayout;
use forensnap_core::hashing::{ImageHasher, ResumableSha256, Sha256Checkpoint};
use forensnap_core::layout::{
    BLOCK_MAP_HEADER, BLOCK_MAP_PATH, BLOCK_SIZE, BlockMapEntry, Layout, TooLarge, blocks_per_part,
};
use futures::future::Either;
use futures::{FutureExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::fetch::{FetchError, FetchPolicy, VerifiedBlock, fetch_verified};
use crate::limit::Limits;
use crate::listing::Lister;
use base64::Engine as _;
use forensnap_evidence::Acquired;
use forensnap_evidence::progress::ByteProgress;
use forensnap_ports::{BlockPage, BlockSource, ListedBlock, SourceError};
use forensnap_store::{CloudError, ErrorKind, EvidenceWrite, StoredPart, composite_sha256};

/// Block-map text is uploaded in parts of this size (S3's minimum is 5 MiB).
const BLOCK_MAP_PART: usize = 8 * 1024 * 1024;

/// Content type of the resume state (part checkpoints, completion marker).
const JSON: &str = "application/json";

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
    /// What the data object holds.
    pub layout: Layout,
}

impl Default for AcquireOptions {
    fn default() -> Self {
        AcquireOptions {
            window: 64,
            channel_blocks: 4,
            list_page: 10_000,
            policy: FetchPolicy::default(),
            layout: Layout::Blocks,
        }
    }
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
    /// Data object hash state after the part.
    pub object_hash: Sha256Checkpoint,
    /// The part's listed blocks: index, our SHA-256 (hex), AWS's checksum (base64).
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
        /// Cause (boxed: it carries AWS's code, message and request id).
        source: Box<CloudError>,
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
) -> impl FnOnce(CloudError) -> AcquireError + use<> {
    let (snapshot_id, key) = (snapshot_id.to_string(), key.to_string());
    move |source| AcquireError::Sink {
        snapshot_id,
        what,
        key,
        source: Box::new(source),
    }
}

fn part_key(prefix: &str, part: u32) -> String {
    ItemLayout::at(prefix).part_checkpoint(part)
}

fn marker_key(prefix: &str) -> String {
    ItemLayout::at(prefix).completion_marker()
}

/// One block of a part: listed by EBS (fetched) or a zero block of the raw layout.
enum Slot {
    Listed(ListedBlock),
    Zero(u64),
}

/// A block ready for the part: fetched and verified, or zeros.
enum Piece {
    Data(VerifiedBlock),
    Zero(u64),
}

/// Hash states carried from part to part.
#[derive(Clone)]
struct Hashes {
    image: ImageHasher,
    object: ResumableSha256,
}

/// The state of one acquisition.
struct Run<'a, S, K> {
    source: &'a S,
    sink: &'a K,
    limits: Limits<'a>,
    options: &'a AcquireOptions,
    progress: &'a dyn ByteProgress,
    snapshot_id: &'a str,
    prefix: &'a str,
    data_key: String,
    volume_bytes: u64,
    /// Blocks per part.
    per_part: u64,
    /// Blocks in the volume.
    total_blocks: u64,
}

/// What the streaming phase ends with.
struct Streamed {
    parts: Vec<StoredPart>,
    hashes: Hashes,
    blocks_stored: u64,
    resumed_parts: u32,
    fetched_now: u64,
    discarded: u64,
    version_id: Option<String>,
    composite_sha256: Option<String>,
}

/// Acquire `snapshot_id` into the evidence item at `prefix` (`data/blocks.bin` or
/// `data/disk.raw`, `data/blockmap.tsv`, checkpoints, the completion marker).
pub async fn acquire<'l, S: BlockSource, K: EvidenceWrite>(
    source: &S,
    sink: &K,
    limits: impl Into<Limits<'l>>,
    options: &AcquireOptions,
    snapshot_id: &str,
    prefix: &str,
    progress: &dyn ByteProgress,
) -> Result<Acquired, AcquireError> {
    let marker = marker_key(prefix);
    if let Some(bytes) = sink.get(&marker).await.map_err(sink_error(
        snapshot_id,
        "the completion marker",
        &marker,
    ))? {
        let mut done: Acquired =
            serde_json::from_slice(&bytes).map_err(|e| AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: marker.clone(),
                why: e.to_string(),
            })?;
        if done.snapshot_id != snapshot_id || done.layout != options.layout {
            return Err(AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: marker,
                why: format!(
                    "it records snapshot {} in the {} layout; this item cannot be acquired again differently",
                    done.snapshot_id,
                    done.layout.as_str()
                ),
            });
        }
        (done.resumed_parts, done.fetched_now, done.discarded) = (done.parts, 0, 0);
        done.already_complete = true;
        progress.position(snapshot_id, done.volume_bytes, done.volume_bytes);
        return Ok(done);
    }

    let limits = limits.into();
    // The first page gives the volume size; it is listed once, at the configured page size, and
    // handed to the stream, which consumes it instead of listing it again.
    let mut lister = Lister::new(snapshot_id, 0, options.list_page);
    let page = list_with_retries(source, &options.policy, snapshot_id, &mut lister).await?;
    let volume_bytes = page.as_ref().map(|p| p.volume_bytes).unwrap_or_default();
    let first = FirstPage { lister, page };
    let per_part = blocks_per_part(volume_bytes).map_err(|source| AcquireError::TooLarge {
        snapshot_id: snapshot_id.into(),
        source,
    })?;
    let run = Run {
        source,
        sink,
        limits,
        options,
        progress,
        snapshot_id,
        prefix,
        data_key: format!("{prefix}{}", options.layout.data_path()),
        volume_bytes,
        per_part,
        total_blocks: volume_bytes.div_ceil(BLOCK_SIZE),
    };
    let streamed = match sink.head(&run.data_key).await.map_err(sink_error(
        snapshot_id,
        "the data object",
        &run.data_key,
    ))? {
        Some(object) => run.recover_completed(object).await?,
        None => run.stream(first).await?,
    };
    let (block_map_sha256, block_map_bytes, aws_checksums_matched) =
        run.write_block_map(streamed.parts.len() as u32).await?;
    let Streamed {
        parts,
        hashes,
        blocks_stored,
        resumed_parts,
        fetched_now,
        discarded,
        version_id,
        composite_sha256,
    } = streamed;
    let data_bytes = parts.iter().map(|p| p.size).sum();
    let acquired = Acquired {
        snapshot_id: snapshot_id.into(),
        volume_bytes,
        layout: options.layout,
        image_sha256: hashes.image.finish(),
        blocks_stored,
        parts: parts.len() as u32,
        data_key: run.data_key.clone(),
        data_bytes,
        data_sha256: hashes.object.finalize_hex(),
        block_map_key: format!("{prefix}{BLOCK_MAP_PATH}"),
        block_map_bytes,
        block_map_sha256,
        aws_checksums_matched: Some(aws_checksums_matched),
        version_id,
        composite_sha256,
        resumed_parts,
        fetched_now,
        discarded,
        already_complete: false,
    };
    let bytes = serde_json::to_vec_pretty(&acquired).map_err(|e| AcquireError::Checkpoint {
        snapshot_id: snapshot_id.into(),
        key: marker.clone(),
        why: e.to_string(),
    })?;
    sink.put_version(&marker, bytes, JSON)
        .await
        .map_err(sink_error(snapshot_id, "the completion marker", &marker))?;
    progress.position(snapshot_id, volume_bytes, volume_bytes);
    Ok(acquired)
}

/// The first listing page, fetched by [`acquire`] to learn the volume size, and the lister that
/// fetched it (positioned after it, its page token fresh).
struct FirstPage {
    lister: Lister,
    page: Option<BlockPage>,
}

impl FirstPage {
    /// The lister and the queued blocks a stream starting at block `next_index` continues from.
    /// The page holds every listed block below the lister's position (all of them once the
    /// lister is done), so it serves any start up to that position: from index 0 always, and a
    /// resume whose next index it covers. A resume beyond it lists again from its index.
    fn resume_at(
        self,
        snapshot_id: &str,
        next_index: u64,
        page_size: u32,
    ) -> (Lister, VecDeque<ListedBlock>) {
        let FirstPage { lister, page } = self;
        let reused = lister.is_done() || next_index <= lister.position();
        tracing::debug!(
            snapshot_id,
            next_index,
            first_page_end = lister.position(),
            reused,
            "listing resumes"
        );
        if !reused {
            return (
                Lister::new(snapshot_id, next_index, page_size),
                VecDeque::new(),
            );
        }
        let queue = page
            .into_iter()
            .flat_map(|p| p.blocks)
            .filter(|b| b.index >= next_index)
            .collect();
        (lister, queue)
    }
}

/// One listing page, throttling and transient failures retried with jittered backoff (bounded
/// by the fetch policy's attempts).
async fn list_with_retries<S: BlockSource>(
    source: &S,
    policy: &FetchPolicy,
    snapshot_id: &str,
    lister: &mut Lister,
) -> Result<Option<BlockPage>, AcquireError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match lister.next(source).await {
            Ok(page) => return Ok(page),
            Err(SourceError::Throttled(_) | SourceError::Transient(_))
                if attempts < policy.max_attempts =>
            {
                tokio::time::sleep(policy.delay(attempts)).await;
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
}

impl<S: BlockSource, K: EvidenceWrite> Run<'_, S, K> {
    fn checkpoint_error(&self, key: &str, why: impl ToString) -> AcquireError {
        AcquireError::Checkpoint {
            snapshot_id: self.snapshot_id.into(),
            key: key.into(),
            why: why.to_string(),
        }
    }

    async fn read_checkpoint(&self, number: u32) -> Result<Option<PartCheckpoint>, AcquireError> {
        let key = part_key(self.prefix, number);
        let Some(bytes) = self.sink.get(&key).await.map_err(sink_error(
            self.snapshot_id,
            "a part checkpoint",
            &key,
        ))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.checkpoint_error(&key, e))
    }

    fn hashes_after(&self, checkpoint: Option<&PartCheckpoint>) -> Result<Hashes, AcquireError> {
        let Some(c) = checkpoint else {
            return Ok(Hashes {
                image: ImageHasher::new(self.volume_bytes),
                object: ResumableSha256::new(),
            });
        };
        let key = part_key(self.prefix, c.part);
        Ok(Hashes {
            image: ImageHasher::resume(self.volume_bytes, &c.image_hash)
                .map_err(|e| self.checkpoint_error(&key, e))?,
            object: ResumableSha256::restore(&c.object_hash)
                .map_err(|e| self.checkpoint_error(&key, e))?,
        })
    }

    /// The data object was completed by an earlier run that stopped before its marker: accept
    /// it only if its composite checksum is exactly that of the checkpointed parts.
    async fn recover_completed(
        &self,
        object: forensnap_store::CompletedObject,
    ) -> Result<Streamed, AcquireError> {
        let mut checkpoints = Vec::new();
        while let Some(c) = self.read_checkpoint(checkpoints.len() as u32 + 1).await? {
            checkpoints.push(c);
        }
        let parts: Vec<StoredPart> = checkpoints
            .iter()
            .map(|c| StoredPart {
                number: c.part,
                size: c.size,
                sha256: c.sha256.clone(),
                etag: String::new(),
            })
            .collect();
        let ours = composite_sha256(&parts);
        if checkpoints.is_empty() || object.composite_sha256.as_deref() != Some(ours.as_str()) {
            return Err(self.checkpoint_error(
                &self.data_key,
                format!(
                    "the data object exists (composite SHA-256 {}) but does not match its {} part checkpoints ({ours}); it was not written by this acquisition as recorded: leave it in place, investigate, and collect into a new case",
                    object.composite_sha256.as_deref().unwrap_or("not reported"),
                    checkpoints.len()
                ),
            ));
        }
        let hashes = self.hashes_after(checkpoints.last())?;
        tracing::info!(
            snapshot_id = self.snapshot_id,
            parts = parts.len(),
            "data object completed by an earlier run"
        );
        Ok(Streamed {
            blocks_stored: checkpoints.iter().map(|c| c.blocks.len() as u64).sum(),
            resumed_parts: parts.len() as u32,
            parts,
            hashes,
            fetched_now: 0,
            discarded: 0,
            version_id: object.version_id,
            composite_sha256: object.composite_sha256,
        })
    }

    /// The longest run of stored parts `1..=n` with a checkpoint for `n`.
    async fn resume_point(
        &self,
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
            let Some(checkpoint) = self.read_checkpoint(n as u32).await? else {
                continue;
            };
            let part = &contiguous[n - 1];
            if checkpoint.size != part.size || checkpoint.sha256 != part.sha256 {
                continue; // the part was uploaded again after this checkpoint: not trustworthy
            }
            return Ok((contiguous[..n].to_vec(), Some(checkpoint)));
        }
        Ok((Vec::new(), None))
    }

    /// Stream every part not yet stored, then complete the data object.
    async fn stream(&self, first: FirstPage) -> Result<Streamed, AcquireError> {
        let (snapshot_id, sink) = (self.snapshot_id, self.sink);
        let data_key = &self.data_key;
        let (upload_id, stored) = sink.open_upload(data_key).await.map_err(sink_error(
            snapshot_id,
            "the data upload",
            data_key,
        ))?;
        let (mut parts, checkpoint) = self.resume_point(&stored).await?;
        let resumed_parts = parts.len() as u32;
        let mut hashes = self.hashes_after(checkpoint.as_ref())?;
        let mut next_index = checkpoint.as_ref().map(|c| c.next_index).unwrap_or(0);
        let mut object_offset = checkpoint
            .as_ref()
            .map(|c| c.object_offset + c.size)
            .unwrap_or(0);
        let mut blocks_stored = match self.options.layout {
            Layout::Blocks => object_offset / BLOCK_SIZE,
            Layout::Raw => 0,
        };
        if self.options.layout == Layout::Raw {
            for n in 1..=resumed_parts {
                blocks_stored += self
                    .read_checkpoint(n)
                    .await?
                    .map(|c| c.blocks.len() as u64)
                    .unwrap_or(0);
            }
        }
        self.progress
            .position(snapshot_id, hashes.image.position(), self.volume_bytes);
        let (mut lister, mut queue) =
            first.resume_at(snapshot_id, next_index, self.options.list_page);
        let (mut fetched_now, mut discarded) = (0u64, 0u64);

        while let Some((slots, end_index)) = self
            .next_part(&mut lister, &mut queue, next_index, parts.is_empty())
            .await?
        {
            let number = parts.len() as u32 + 1;
            let len = slots.len() as u64 * BLOCK_SIZE;
            let (part, after, entries, part_discarded) = self
                .upload_part(&upload_id, number, slots, hashes.clone())
                .await?;
            hashes = after;
            fetched_now += entries.len() as u64;
            discarded += part_discarded;
            next_index =
                end_index.unwrap_or_else(|| entries.last().map(|e| e.0 + 1).unwrap_or(next_index));
            let checkpoint = PartCheckpoint {
                part: number,
                size: len,
                sha256: part.sha256.clone(),
                object_offset,
                next_index,
                image_hash: hashes.image.checkpoint(),
                object_hash: hashes.object.checkpoint(),
                blocks: entries,
            };
            let key = part_key(self.prefix, number);
            let bytes =
                serde_json::to_vec(&checkpoint).map_err(|e| self.checkpoint_error(&key, e))?;
            sink.put_version(&key, bytes, JSON)
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

        let completed = sink
            .complete_upload(data_key, &upload_id, &parts)
            .await
            .map_err(sink_error(snapshot_id, "the data object", data_key))?;
        if let Some(reported) = &completed.composite_sha256 {
            let ours = composite_sha256(&parts);
            if reported != &ours {
                return Err(AcquireError::Sink {
                    snapshot_id: snapshot_id.into(),
                    what: "the data object",
                    key: data_key.clone(),
                    source: Box::new(CloudError::new(
                        ErrorKind::Invalid,
                        "CompleteMultipartUpload",
                        format!(
                            "S3 reports composite SHA-256 {reported}, the parts sent make {ours}"
                        ),
                    )),
                });
            }
        }
        Ok(Streamed {
            parts,
            hashes,
            blocks_stored,
            resumed_parts,
            fetched_now,
            discarded,
            version_id: completed.version_id,
            composite_sha256: completed.composite_sha256,
        })
    }

    /// One more listing page into `queue`.
    async fn list_more(
        &self,
        lister: &mut Lister,
        queue: &mut VecDeque<ListedBlock>,
    ) -> Result<(), AcquireError> {
        let page =
            list_with_retries(self.source, &self.options.policy, self.snapshot_id, lister).await?;
        queue.extend(page.into_iter().flat_map(|p| p.blocks));
        Ok(())
    }

    /// The blocks of the next part and, for the raw layout, the index it ends at; `None` when
    /// every part is stored. A volume with no data still gets one (empty) part: S3 refuses an
    /// upload with none.
    async fn next_part(
        &self,
        lister: &mut Lister,
        queue: &mut VecDeque<ListedBlock>,
        next_index: u64,
        first: bool,
    ) -> Result<Option<(Vec<Slot>, Option<u64>)>, AcquireError> {
        let per_part = self.per_part as usize;
        match self.options.layout {
            Layout::Blocks => {
                while queue.len() < per_part && !lister.is_done() {
                    self.list_more(lister, queue).await?;
                }
                if queue.is_empty() && !first {
                    return Ok(None);
                }
                let take = queue.len().min(per_part);
                Ok(Some((
                    queue.drain(..take).map(Slot::Listed).collect(),
                    None,
                )))
            }
            Layout::Raw => {
                if next_index >= self.total_blocks && !first {
                    return Ok(None);
                }
                let end = (next_index + self.per_part).min(self.total_blocks);
                while queue.back().is_none_or(|b| b.index < end) && !lister.is_done() {
                    self.list_more(lister, queue).await?;
                }
                let mut slots = Vec::with_capacity((end - next_index) as usize);
                for index in next_index..end {
                    match queue.front() {
                        Some(b) if b.index == index => {
                            slots.extend(queue.pop_front().map(Slot::Listed))
                        }
                        _ => slots.push(Slot::Zero(index)),
                    }
                }
                Ok(Some((slots, Some(end))))
            }
        }
    }

    /// Fetch, hash and upload one part; returns the stored part, the hash states after it, its
    /// listed blocks and how many answers were discarded.
    async fn upload_part(
        &self,
        upload_id: &str,
        number: u32,
        slots: Vec<Slot>,
        mut hashes: Hashes,
    ) -> Result<(StoredPart, Hashes, Vec<(u64, String, String)>, u64), AcquireError> {
        let snapshot_id = self.snapshot_id;
        let len = slots.len() as u64 * BLOCK_SIZE;
        let (tx, rx) = mpsc::channel(self.options.channel_blocks.max(1));
        let upload = self
            .sink
            .upload_part(&self.data_key, upload_id, number, len, rx);
        let produce = async {
            let mut entries = Vec::with_capacity(slots.len());
            let mut reads = futures::stream::iter(slots.iter().map(|slot| {
                match slot {
                    Slot::Listed(b) => Either::Left(
                        fetch_verified(
                            self.source,
                            self.limits,
                            &self.options.policy,
                            snapshot_id,
                            b,
                        )
                        .map(|r| r.map(Piece::Data)),
                    ),
                    Slot::Zero(index) => Either::Right(std::future::ready(Ok(Piece::Zero(*index)))),
                }
            }))
            .buffered(self.options.window.max(1));
            let mut part_discarded = 0;
            while let Some(read) = reads.next().await {
                let (index, data, attempts) = match read? {
                    Piece::Data(block) => {
                        part_discarded += u64::from(block.discarded);
                        entries.push((block.index, block.sha256, block.aws_checksum));
                        (block.index, block.data, block.attempts)
                    }
                    Piece::Zero(index) => (index, vec![0; BLOCK_SIZE as usize], 0),
                };
                let offset = index * BLOCK_SIZE;
                // Hashing is CPU work (zero runs included): off the async runtime.
                let (back, data, ordered) = tokio::task::spawn_blocking(move || {
                    let ordered = hashes.image.block(offset, &data);
                    hashes.object.update(&data);
                    (hashes, data, ordered)
                })
                .await
                .map_err(|e| FetchError::Failed {
                    snapshot_id: snapshot_id.into(),
                    index,
                    attempts,
                    last: SourceError::Transient(format!("hashing task: {e}")),
                })?;
                hashes = back;
                ordered.map_err(|e| FetchError::Failed {
                    snapshot_id: snapshot_id.into(),
                    index,
                    attempts,
                    last: SourceError::Fatal(format!("blocks listed out of order: {e}")),
                })?;
                self.progress
                    .position(snapshot_id, offset + BLOCK_SIZE, self.volume_bytes);
                if tx.send(data).await.is_err() {
                    break; // the upload failed; its error is reported below
                }
            }
            drop(tx);
            Ok::<_, AcquireError>((hashes, entries, part_discarded))
        };
        let (uploaded, produced) = tokio::join!(upload, produce);
        let (hashes, entries, part_discarded) = produced?;
        let part = uploaded.map_err(sink_error(snapshot_id, "a data part", &self.data_key))?;
        if part.size != len {
            return Err(AcquireError::Sink {
                snapshot_id: snapshot_id.into(),
                what: "a data part",
                key: self.data_key.clone(),
                source: Box::new(CloudError::new(
                    ErrorKind::Invalid,
                    "UploadPart",
                    format!("part {number} holds {} bytes, {len} were sent", part.size),
                )),
            });
        }
        Ok((part, hashes, entries, part_discarded))
    }

    /// Assemble the block map from the part checkpoints, uploaded in 8 MiB parts (bounded
    /// memory); returns its SHA-256 (hex) and size.
    /// Assemble the block map; returns its SHA-256 (hex), its size, and how many of its blocks
    /// carry an AWS checksum equal to our SHA-256 (all of them, or the acquisition fails: a
    /// block is stored only after that check, so a difference means a checkpoint was altered).
    async fn write_block_map(&self, parts: u32) -> Result<(String, u64, u64), AcquireError> {
        let (snapshot_id, sink) = (self.snapshot_id, self.sink);
        let key = &format!("{}{BLOCK_MAP_PATH}", self.prefix);
        let (upload_id, _) = sink.open_upload(key).await.map_err(sink_error(
            snapshot_id,
            "the block map upload",
            key,
        ))?;
        let mut stored = Vec::new();
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut buffer = format!("{BLOCK_MAP_HEADER}\n").into_bytes();
        let mut object_offset = 0;
        let (mut entries, mut matched) = (0u64, 0u64);
        for n in 1..=parts {
            let checkpoint = self.read_checkpoint(n).await?.ok_or_else(|| {
                self.checkpoint_error(
                    &part_key(self.prefix, n),
                    "missing: the block map cannot be assembled",
                )
            })?;
            for (index, sha256, aws_checksum) in checkpoint.blocks {
                entries += 1;
                if checksum_matches(&sha256, &aws_checksum) {
                    matched += 1;
                }
                let entry = BlockMapEntry {
                    index,
                    offset: index * BLOCK_SIZE,
                    length: BLOCK_SIZE,
                    object_offset: match self.options.layout {
                        Layout::Blocks => object_offset,
                        Layout::Raw => index * BLOCK_SIZE,
                    },
                    sha256,
                    aws_checksum,
                };
                object_offset += BLOCK_SIZE;
                buffer.extend_from_slice(entry.to_line().as_bytes());
                buffer.push(b'\n');
            }
            if buffer.len() >= BLOCK_MAP_PART || n == parts {
                let chunk = std::mem::take(&mut buffer);
                hash.update(&chunk);
                size += chunk.len() as u64;
                stored.push(
                    upload_chunk(sink, key, &upload_id, stored.len() as u32 + 1, chunk)
                        .await
                        .map_err(sink_error(snapshot_id, "the block map", key))?,
                );
            }
        }
        if matched != entries {
            return Err(self.checkpoint_error(
                key,
                format!(
                    "{} of {entries} blocks in the part checkpoints carry an AWS checksum that differs from their SHA-256; the block map is not written",
                    entries - matched
                ),
            ));
        }
        sink.complete_upload(key, &upload_id, &stored)
            .await
            .map_err(sink_error(snapshot_id, "the block map", key))?;
        Ok((hex::encode(hash.finalize()), size, matched))
    }
}

/// Whether AWS's checksum of a block (base64 SHA-256) is our SHA-256 of it (hex).
fn checksum_matches(sha256_hex: &str, aws_base64: &str) -> bool {
    match (
        hex::decode(sha256_hex),
        base64::engine::general_purpose::STANDARD.decode(aws_base64),
    ) {
        (Ok(ours), Ok(theirs)) => ours.len() == 32 && ours == theirs,
        _ => false,
    }
}

async fn upload_chunk<K: EvidenceWrite>(
    sink: &K,
    key: &str,
    upload_id: &str,
    number: u32,
    chunk: Vec<u8>,
) -> Result<StoredPart, CloudError> {
    let (tx, rx) = mpsc::channel(1);
    let len = chunk.len() as u64;
    let send = async move {
        let _ = tx.send(chunk).await;
    };
    let (part, ()) = tokio::join!(sink.upload_part(key, upload_id, number, len, rx), send);
    part
}

#[cfg(test)]
mod tests;
