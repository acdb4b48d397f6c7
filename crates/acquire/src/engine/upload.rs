//! The streaming phase: listing (the first page reused, the rest paged from the resume point),
//! each part planned from the listed blocks (zero blocks added in the raw layout), its blocks
//! fetched and verified at most `window` at a time, hashed in index order and streamed into the
//! part's upload, a checkpoint written after it, and the data object completed.

use std::collections::VecDeque;

use forensnap_core::layout::{BLOCK_SIZE, Layout};
use futures::future::Either;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use forensnap_ports::{BlockPage, BlockSource, ListedBlock, SourceError};
use forensnap_store::{CloudError, ErrorKind, EvidenceWrite, StoredPart, composite_sha256};

use super::blockmap::{HELD_ROWS_BUDGET, HeldRows};
use super::{
    AcquireError, AcquireOptions, Hashes, JSON, PartCheckpoint, Run, Streamed, part_key, sink_error,
};
use crate::fetch::{FetchError, FetchPolicy, VerifiedBlock, fetch_verified};
use crate::listing::Lister;

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

/// The first listing page, fetched by [`acquire`](super::acquire) to learn the volume size, and
/// the lister that fetched it (positioned after it, its page token fresh).
pub(super) struct FirstPage {
    lister: Lister,
    page: Option<BlockPage>,
}

impl FirstPage {
    /// List the first page of `snapshot_id` from block 0.
    pub(super) async fn list<S: BlockSource>(
        source: &S,
        options: &AcquireOptions,
        snapshot_id: &str,
    ) -> Result<Self, AcquireError> {
        let mut lister = Lister::new(snapshot_id, 0, options.list_page);
        let page = list_with_retries(source, &options.policy, snapshot_id, &mut lister).await?;
        Ok(FirstPage { lister, page })
    }

    /// The volume's size as the page reports it (0 when there is no page).
    pub(super) fn volume_bytes(&self) -> u64 {
        self.page
            .as_ref()
            .map(|p| p.volume_bytes)
            .unwrap_or_default()
    }

    /// The lister and the queued blocks a stream starting at block `next_index` continues from.
    /// The page holds every listed block below the lister's position (all of them once the
    /// lister is done), so it serves any start up to that position: from index 0 always, and a
    /// resume whose next index it covers. A resume beyond it lists again from its index.
    pub(super) fn resume_at(
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
    /// Stream every part not yet stored, then complete the data object.
    pub(super) async fn stream(&self, first: FirstPage) -> Result<Streamed, AcquireError> {
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
        let mut held = HeldRows::new(HELD_ROWS_BUDGET);
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
            parts.push(part);
            tracing::info!(
                snapshot_id,
                part = number,
                blocks = checkpoint.blocks.len(),
                "part stored"
            );
            // The block map is assembled from these rows: kept, it need not read this
            // checkpoint back.
            held.hold(number, checkpoint.blocks);
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
            held,
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
}
