//! The block map (`data/blockmap.tsv`): one `BlockMapEntry` line per stored block, in index
//! order, assembled from the part checkpoints and uploaded in 8 MiB parts; every block's AWS
//! checksum is checked against its SHA-256 on the way.

use base64::Engine as _;
use forensnap_core::layout::{BLOCK_MAP_HEADER, BLOCK_MAP_PATH, BLOCK_SIZE, BlockMapEntry, Layout};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use forensnap_ports::BlockSource;
use forensnap_store::{CloudError, EvidenceWrite, StoredPart};

use super::{AcquireError, Run, part_key, sink_error};

/// Block-map text is uploaded in parts of this size (S3's minimum is 5 MiB).
const BLOCK_MAP_PART: usize = 8 * 1024 * 1024;

impl<S: BlockSource, K: EvidenceWrite> Run<'_, S, K> {
    /// Assemble the block map from the part checkpoints, uploaded in 8 MiB parts (bounded
    /// memory); returns its SHA-256 (hex) and size.
    /// Assemble the block map; returns its SHA-256 (hex), its size, and how many of its blocks
    /// carry an AWS checksum equal to our SHA-256 (all of them, or the acquisition fails: a
    /// block is stored only after that check, so a difference means a checkpoint was altered).
    pub(super) async fn write_block_map(
        &self,
        parts: u32,
    ) -> Result<(String, u64, u64), AcquireError> {
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
