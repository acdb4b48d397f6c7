//! Acquiring one snapshot: every listed block read and verified, assembled in index order into
//! the parts of one multipart object (several uploading at once), the full-image SHA-256
//! computed over the whole logical volume (zero runs included) on a thread of its own, and a
//! checkpoint written after every part so that a crashed run resumes from the parts already
//! stored without fetching them again. Checkpoints are written beside the next uploads, in any
//! order (an upload slot is free once its part is stored): a resume starts after the longest
//! run of parts `1..=n` that all have one.
//!
//! Two layouts ([`Layout`]): `blocks` stores only the listed blocks (`data/blocks.bin`), `raw`
//! the whole image (`data/disk.raw`, zero runs written). Both give the same image SHA-256 and
//! the same block map (`data/blockmap.tsv`). When everything is stored, a completion marker
//! (`acquisition/complete.json`, the [`Acquired`] record) makes a later run of the case return
//! at once instead of acquiring again; a crash between CompleteMultipartUpload and the marker is
//! recognised by the completed object's checksum (CRC-64/NVME of the whole object, or the
//! composite SHA-256 of an upload opened before it) matching the part checkpoints.
//!
//! Memory is bounded whatever the volume size: at most `window` blocks read ahead, plus
//! `uploads + 1` parts held whole (so that a failed upload is sent again from its bytes), and
//! the blocks of [`HASH_BACKLOG_PARTS`] parts queued for hashing, of [`part_blocks`] blocks
//! each: with the defaults (160 blocks, 4 uploads, 16 MiB parts) 80 MiB and 112 MiB per volume
//! at most. Besides blocks, a run holds the listed blocks not yet read (a part's
//! worth and a listing page at most) and at most 32 MiB of block-map rows (those of the parts
//! it wrote, so the block map need not read their checkpoints back). See
//! `docs/acquisition-design.md` for the layout.
//!
//! This module owns [`acquire`] (the completion marker, the first listing page, the choice
//! between streaming and recovery, the [`Acquired`] record) and the state of one run; the rest
//! is split by concern:
//!
//! * `upload`   -- the pipeline: listing cut into parts, continuous reads, parts assembled,
//!   uploaded several at once and retried, checkpointed, the object completed.
//! * `hasher`   -- the image and data-object hashes on a thread of their own.
//! * `resume`   -- the part checkpoints read back: resume point, hash states, recovery.
//! * `blockmap` -- `data/blockmap.tsv` from the rows held in memory and the part checkpoints.

mod blockmap;
mod hasher;
mod resume;
mod upload;

pub use upload::HASH_BACKLOG_PARTS;

use forensnap_core::ItemLayout;
use forensnap_core::hashing::{ImageHasher, ResumableSha256};
use forensnap_core::layout::{BLOCK_MAP_PATH, BLOCK_SIZE, Layout, TooLarge, blocks_per_part};

use forensnap_evidence::Acquired;
use forensnap_evidence::progress::ByteProgress;
use forensnap_ports::{BlockSource, SourceError};
use forensnap_store::{CloudError, EvidenceWrite, ObjectChecksum, StoredPart};

use crate::fetch::{FetchError, FetchPolicy};
use crate::limit::Limits;

use blockmap::HeldRows;
pub use resume::PartCheckpoint;
use upload::FirstPage;

/// Blocks per part for a volume of `volume_bytes`: `part_bytes` rounded to whole blocks, or
/// more when S3's 10,000-part limit needs more (volumes over about 156 GiB at 16 MiB).
pub fn part_blocks(volume_bytes: u64, part_bytes: u64) -> Result<u64, TooLarge> {
    Ok(blocks_per_part(volume_bytes)?.max(part_bytes / BLOCK_SIZE))
}

/// Content type of the resume state (part checkpoints, completion marker).
const JSON: &str = "application/json";

/// Tuning of one acquisition.
#[derive(Debug, Clone, Copy)]
pub struct AcquireOptions {
    /// Blocks read ahead of assembly at most (in flight or waiting for their turn): the
    /// reader's share of memory, and a ceiling on reads in flight.
    pub window: usize,
    /// Parts uploading at once (each held whole until stored).
    pub uploads: usize,
    /// Part size aimed at (whole blocks; larger where S3's part limit needs it).
    pub part_bytes: u64,
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
            window: 160,
            uploads: 4,
            part_bytes: 16 << 20,
            list_page: 10_000,
            policy: FetchPolicy::default(),
            layout: Layout::Blocks,
        }
    }
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
    /// The EBS direct APIs give the snapshot another size than EC2 does.
    #[error(
        "snapshot {snapshot_id}: the EBS direct APIs give a volume of {ebs_bytes} bytes, EC2 a volume of {ec2_gib} GiB; nothing was read or stored. Next: compare `aws ebs list-snapshot-blocks` and `aws ec2 describe-snapshots` for this snapshot and escalate: one of the two answers is wrong"
    )]
    SizeMismatch {
        /// Snapshot.
        snapshot_id: String,
        /// ListSnapshotBlocks' VolumeSize, in bytes.
        ebs_bytes: u64,
        /// DescribeSnapshots' VolumeSize, in GiB.
        ec2_gib: u64,
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
    /// Block-map rows of the parts this run wrote, as far as the budget allowed.
    held: HeldRows,
    resumed_parts: u32,
    fetched_now: u64,
    discarded: u64,
    version_id: Option<String>,
    /// S3's checksum of the completed data object.
    checksum: Option<ObjectChecksum>,
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
    acquire_expecting(
        source,
        sink,
        limits,
        options,
        snapshot_id,
        prefix,
        progress,
        None,
    )
    .await
}

/// [`acquire`], refusing before anything is read or stored when the EBS direct APIs give the
/// volume another size than `expected_gib` (EC2's DescribeSnapshots VolumeSize; both APIs count
/// whole GiB).
#[allow(clippy::too_many_arguments)]
pub async fn acquire_expecting<'l, S: BlockSource, K: EvidenceWrite>(
    source: &S,
    sink: &K,
    limits: impl Into<Limits<'l>>,
    options: &AcquireOptions,
    snapshot_id: &str,
    prefix: &str,
    progress: &dyn ByteProgress,
    expected_gib: Option<u64>,
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
    let first = FirstPage::list(source, options, snapshot_id).await?;
    let volume_bytes = first.volume_bytes();
    if let Some(ec2_gib) = expected_gib
        && ec2_gib != volume_bytes.div_ceil(1 << 30)
    {
        return Err(AcquireError::SizeMismatch {
            snapshot_id: snapshot_id.into(),
            ebs_bytes: volume_bytes,
            ec2_gib,
        });
    }
    let per_part =
        part_blocks(volume_bytes, options.part_bytes).map_err(|source| AcquireError::TooLarge {
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
    let Streamed {
        parts,
        hashes,
        held,
        resumed_parts,
        fetched_now,
        discarded,
        version_id,
        checksum,
    } = streamed;
    let (composite_sha256, data_crc64nvme) = match checksum {
        Some(ObjectChecksum::CompositeSha256(c)) => (Some(c), None),
        Some(ObjectChecksum::Crc64Nvme(c)) => (None, Some(c)),
        None => (None, None),
    };
    let block_map = run.write_block_map(&parts, held).await?;
    // Finishing the image hash zero-fills the tail of the volume: CPU work, off the runtime.
    let (image_sha256, data_sha256) =
        tokio::task::spawn_blocking(move || (hashes.image.finish(), hashes.object.finalize_hex()))
            .await
            .map_err(|e| AcquireError::Checkpoint {
                snapshot_id: snapshot_id.into(),
                key: run.data_key.clone(),
                why: format!("finishing the image hash: {e}"),
            })?;
    let data_bytes = parts.iter().map(|p| p.size).sum();
    let acquired = Acquired {
        snapshot_id: snapshot_id.into(),
        volume_bytes,
        layout: options.layout,
        image_sha256,
        // The block map lists every stored block (of this run and of earlier ones) once.
        blocks_stored: block_map.blocks,
        parts: parts.len() as u32,
        data_key: run.data_key.clone(),
        data_bytes,
        data_sha256,
        block_map_key: format!("{prefix}{BLOCK_MAP_PATH}"),
        block_map_bytes: block_map.bytes,
        block_map_sha256: block_map.sha256,
        // The block map is written only when every block's AWS checksum is its SHA-256.
        aws_checksums_matched: Some(block_map.blocks),
        version_id,
        composite_sha256,
        data_crc64nvme,
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

#[cfg(test)]
mod tests;
