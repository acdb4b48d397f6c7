//! Resume state: the part checkpoints (`acquisition/parts/NNNNN.json`) read back, the hash
//! states restored from one, the resume point of an open upload (the longest run of stored
//! parts whose last has a matching checkpoint), and the recovery of a data object completed by
//! an earlier run that stopped before its completion marker.

use forensnap_core::ItemLayout;
use forensnap_core::hashing::{ImageHasher, ResumableSha256, Sha256Checkpoint};
use forensnap_ports::BlockSource;
use forensnap_store::{
    CompletedObject, EvidenceWrite, PartAlgorithm, PartChecksum, StoredPart, object_checksum,
};

use super::blockmap::HeldRows;
use super::{AcquireError, Hashes, Run, Streamed, part_key, sink_error};

/// The state after one part, stored beside the data (`acquisition/parts/NNNNN.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartCheckpoint {
    /// Part number.
    pub part: u32,
    /// Bytes in the part.
    pub size: u64,
    /// S3's checksum of the part (`"crc64nvme"`, or `"sha256"` in uploads opened before it).
    #[serde(flatten)]
    pub checksum: PartChecksum,
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

impl<S: BlockSource, K: EvidenceWrite> Run<'_, S, K> {
    pub(super) fn checkpoint_error(&self, key: &str, why: impl ToString) -> AcquireError {
        AcquireError::Checkpoint {
            snapshot_id: self.snapshot_id.into(),
            key: key.into(),
            why: why.to_string(),
        }
    }

    pub(super) async fn read_checkpoint(
        &self,
        number: u32,
    ) -> Result<Option<PartCheckpoint>, AcquireError> {
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

    pub(super) fn hashes_after(
        &self,
        checkpoint: Option<&PartCheckpoint>,
    ) -> Result<Hashes, AcquireError> {
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
    /// it only if its checksum is exactly the one its checkpointed parts make.
    pub(super) async fn recover_completed(
        &self,
        object: CompletedObject,
    ) -> Result<Streamed, AcquireError> {
        // Only the parts and the last checkpoint are kept (its hash states are the totals): the
        // block map reads the rows again, so memory does not grow with the volume.
        let (mut parts, mut last) = (Vec::new(), None);
        while let Some(c) = self.read_checkpoint(parts.len() as u32 + 1).await? {
            parts.push(StoredPart {
                number: c.part,
                size: c.size,
                checksum: c.checksum.clone(),
                etag: String::new(),
            });
            last = Some(c);
        }
        let algorithm = parts
            .first()
            .map(|p| p.checksum.algorithm())
            .unwrap_or(PartAlgorithm::Crc64Nvme);
        let ours = object_checksum(algorithm, &parts);
        let matches = matches!((&ours, &object.checksum), (Ok(a), Some(b)) if a == b);
        if parts.is_empty() || !matches {
            return Err(self.checkpoint_error(
                &self.data_key,
                format!(
                    "the data object exists ({}) but does not match its {} part checkpoints ({}); it was not written by this acquisition as recorded: leave it in place, investigate, and collect into a new case",
                    object
                        .checksum
                        .as_ref()
                        .map_or("S3 reported no checksum".to_string(), |c| c.to_string()),
                    parts.len(),
                    match &ours {
                        Ok(c) => c.to_string(),
                        Err(why) => why.clone(),
                    }
                ),
            ));
        }
        let hashes = self.hashes_after(last.as_ref())?;
        tracing::info!(
            snapshot_id = self.snapshot_id,
            parts = parts.len(),
            "data object completed by an earlier run"
        );
        Ok(Streamed {
            resumed_parts: parts.len() as u32,
            parts,
            hashes,
            // Every part was stored by an earlier run: the block map reads them all back.
            held: HeldRows::new(0),
            fetched_now: 0,
            discarded: 0,
            version_id: object.version_id,
            checksum: object.checksum,
        })
    }

    /// Where an open upload resumes: the longest run of stored parts `1..=n` that all have a
    /// checkpoint (listed, one call per thousand parts; checkpoints are written in any order, so
    /// a part may be stored with its checkpoint missing, or the reverse), whose last checkpoint
    /// matches its stored part. The block map reads the earlier ones back and checks them too.
    pub(super) async fn resume_point(
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
        if contiguous.is_empty() {
            return Ok((Vec::new(), None));
        }
        let checkpointed = self.checkpointed_parts().await?;
        let covered = contiguous
            .iter()
            .take_while(|p| checkpointed.contains(&p.number))
            .count();
        for n in (1..=covered).rev() {
            let Some(checkpoint) = self.read_checkpoint(n as u32).await? else {
                continue;
            };
            let part = &contiguous[n - 1];
            if checkpoint.size != part.size || checkpoint.checksum != part.checksum {
                continue; // the part was uploaded again after this checkpoint: not trustworthy
            }
            return Ok((contiguous[..n].to_vec(), Some(checkpoint)));
        }
        Ok((Vec::new(), None))
    }

    /// The part numbers that have a checkpoint.
    async fn checkpointed_parts(&self) -> Result<std::collections::BTreeSet<u32>, AcquireError> {
        let folder = ItemLayout::at(self.prefix).part_checkpoints();
        let keys = self.sink.list(&folder).await.map_err(sink_error(
            self.snapshot_id,
            "the part checkpoints",
            &folder,
        ))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&folder)?.strip_suffix(".json")?.parse().ok())
            .collect())
    }
}
