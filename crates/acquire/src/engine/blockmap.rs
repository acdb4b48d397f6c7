//! The block map (`data/blockmap.tsv`): one `BlockMapEntry` line per stored block, in index
//! order, uploaded in 8 MiB parts; every block's AWS checksum is checked against its SHA-256 on
//! the way.
//!
//! Its rows are the ones each part checkpoint records. The parts this run wrote hand their rows
//! over in memory ([`HeldRows`], up to a fixed budget), so a fresh acquisition reads no
//! checkpoint back; the parts stored by an earlier run (or whose rows did not fit the budget)
//! are read from their checkpoints, a bounded number of GETs in flight, consumed in part order.

use std::collections::BTreeMap;

use base64::Engine as _;
use forensnap_core::layout::{BLOCK_MAP_HEADER, BLOCK_MAP_PATH, BLOCK_SIZE, BlockMapEntry, Layout};
use futures::StreamExt;
use futures::future::Either;
use sha2::{Digest, Sha256};

use forensnap_ports::BlockSource;
use forensnap_store::{CloudError, EvidenceWrite, PartBody, StoredPart, Upload};

use super::{AcquireError, Run, part_key, sink_error};

/// Block-map text is uploaded in parts of this size (S3's minimum is 5 MiB).
const BLOCK_MAP_PART: usize = 8 * 1024 * 1024;

/// Bytes of rows held in memory for the block map at most. A row costs about 170 bytes, so this
/// holds about 200,000 blocks (100 GiB of data); beyond it the checkpoints are read back.
pub(super) const HELD_ROWS_BUDGET: usize = 32 * 1024 * 1024;

/// Part checkpoints read at once while assembling the block map.
const CHECKPOINT_READS: usize = 16;

/// One block-map row as a part checkpoint stores it: index, our SHA-256 (hex), AWS's checksum
/// (base64).
pub(super) type Row = (u64, String, String);

/// The rows of the parts this run wrote, kept for the block map so it need not read their
/// checkpoints back. Bounded by a byte budget: the first part whose rows would exceed it is not
/// held, and neither is any later one (those are read from their checkpoints).
pub(super) struct HeldRows {
    parts: BTreeMap<u32, Vec<Row>>,
    bytes: usize,
    budget: usize,
    full: bool,
}

impl HeldRows {
    /// Nothing held yet, at most `budget` bytes of rows to come.
    pub(super) fn new(budget: usize) -> Self {
        HeldRows {
            parts: BTreeMap::new(),
            bytes: 0,
            budget,
            full: false,
        }
    }

    /// Hold the rows of part `number` if they fit the budget.
    pub(super) fn hold(&mut self, number: u32, rows: Vec<Row>) {
        if self.full {
            return;
        }
        let bytes = rows
            .iter()
            .map(|(_, sha256, aws)| size_of::<Row>() + sha256.capacity() + aws.capacity())
            .sum::<usize>();
        if self.bytes + bytes > self.budget {
            // From here on the block map reads checkpoints back; the parts held so far stay.
            self.full = true;
            tracing::debug!(
                part = number,
                held_parts = self.parts.len(),
                held_bytes = self.bytes,
                "block-map rows over budget: later parts are read back from their checkpoints"
            );
            return;
        }
        self.bytes += bytes;
        self.parts.insert(number, rows);
    }

    /// How many parts' rows are held.
    pub(super) fn len(&self) -> usize {
        self.parts.len()
    }

    /// The rows of part `number`, when held.
    pub(super) fn take(&mut self, number: u32) -> Option<Vec<Row>> {
        self.parts.remove(&number)
    }
}

/// The block map as stored.
pub(super) struct BlockMap {
    /// SHA-256 of the text, hex.
    pub(super) sha256: String,
    /// Size of the text.
    pub(super) bytes: u64,
    /// Blocks listed (every one with an AWS checksum equal to its SHA-256).
    pub(super) blocks: u64,
}

impl<S: BlockSource, K: EvidenceWrite> Run<'_, S, K> {
    /// The rows of `part` from its checkpoint, which must describe the part S3 holds.
    async fn checkpoint_rows(&self, part: &StoredPart) -> Result<Vec<Row>, AcquireError> {
        let key = part_key(self.prefix, part.number);
        let checkpoint = self.read_checkpoint(part.number).await?.ok_or_else(|| {
            self.checkpoint_error(&key, "missing: the block map cannot be assembled")
        })?;
        if checkpoint.size != part.size || checkpoint.checksum != part.checksum {
            return Err(self.checkpoint_error(
                &key,
                format!(
                    "records {} bytes with {}, but S3 holds part {} as {} bytes with {}: the data object is not what the checkpoints describe; abort the upload (aws s3api abort-multipart-upload) and collect again",
                    checkpoint.size, checkpoint.checksum, part.number, part.size, part.checksum
                ),
            ));
        }
        Ok(checkpoint.blocks)
    }

    /// Assemble the block map of `parts` (numbered `1..=n`) from the rows `held` and the part
    /// checkpoints, uploaded in 8 MiB parts (bounded memory). Every block must carry an AWS
    /// checksum equal to our SHA-256, or the acquisition fails: a block is stored only after
    /// that check, so a difference means a checkpoint was altered.
    pub(super) async fn write_block_map(
        &self,
        parts: &[StoredPart],
        mut held: HeldRows,
    ) -> Result<BlockMap, AcquireError> {
        let (snapshot_id, sink) = (self.snapshot_id, self.sink);
        let key = &format!("{}{BLOCK_MAP_PATH}", self.prefix);
        tracing::debug!(
            snapshot_id,
            parts = parts.len(),
            held = held.len(),
            "assembling the block map"
        );
        let (upload, _) = sink.open_upload(key).await.map_err(sink_error(
            snapshot_id,
            "the block map upload",
            key,
        ))?;
        // Held rows are ready at once; the others are read, CHECKPOINT_READS at a time, and
        // come out in part order whatever order the reads finish in.
        let mut rows = futures::stream::iter(parts.iter().map(|p| match held.take(p.number) {
            Some(rows) => Either::Left(std::future::ready(Ok(rows))),
            None => Either::Right(self.checkpoint_rows(p)),
        }))
        .buffered(CHECKPOINT_READS);
        let mut stored = Vec::new();
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut buffer = format!("{BLOCK_MAP_HEADER}\n").into_bytes();
        let mut object_offset = 0;
        let (mut n, mut entries, mut matched) = (0u32, 0u64, 0u64);
        while let Some(part_rows) = rows.next().await {
            n += 1;
            for (index, sha256, aws_checksum) in part_rows? {
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
            if buffer.len() >= BLOCK_MAP_PART || n as usize == parts.len() {
                let chunk = std::mem::take(&mut buffer);
                hash.update(&chunk);
                size += chunk.len() as u64;
                stored.push(
                    upload_chunk(sink, key, &upload, stored.len() as u32 + 1, chunk)
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
        sink.complete_upload(key, &upload, &stored)
            .await
            .map_err(sink_error(snapshot_id, "the block map", key))?;
        Ok(BlockMap {
            sha256: hex::encode(hash.finalize()),
            bytes: size,
            blocks: matched,
        })
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
    upload: &Upload,
    number: u32,
    chunk: Vec<u8>,
) -> Result<StoredPart, CloudError> {
    sink.upload_part(key, upload, number, PartBody::from(chunk))
        .await
}
