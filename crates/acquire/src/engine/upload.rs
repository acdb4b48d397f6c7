//! The streaming phase, a pipeline that never waits on itself:
//!
//! 1. **plan** -- listing (the first page reused, the rest paged from the resume point) cut into
//!    parts of whole blocks (zero blocks added in the raw layout);
//! 2. **read** -- one continuous stream of verified block reads across part boundaries, at most
//!    `window` ahead, in flight as many as the limiter allows, handed over in index order;
//! 3. **assemble** -- each block goes to its part's body (shared `Bytes`, no copy) and to the
//!    volume's hashing thread (`hasher`), which holds reads up only when more than
//!    [`HASH_BACKLOG_PARTS`] parts wait for it;
//! 4. **upload** -- up to `uploads` parts at once, each retried from the bytes it holds;
//! 5. **checkpoint** -- once a part is stored and the hashing thread has passed it, its
//!    checkpoint is written with the hash states after it, beside the next uploads.
//!
//! Memory: at most `window` blocks read ahead, plus `uploads + 1` parts (the one being filled)
//! of `per_part` blocks each, and the blocks of at most [`HASH_BACKLOG_PARTS`] parts queued for
//! hashing (shared with the part bodies while those upload; zero blocks of the raw layout share
//! one static buffer); besides, a listing page and the block-map rows held (see `blockmap`).

use std::collections::{BTreeMap, VecDeque};
use std::pin::pin;

use bytes::Bytes;
use forensnap_core::layout::{BLOCK_SIZE, Layout};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};

use forensnap_ports::{BlockPage, BlockSource, ListedBlock, SourceError};
use forensnap_store::{
    CloudError, ErrorKind, EvidenceWrite, PartBody, StoredPart, Upload, object_checksum,
};

use super::blockmap::{HELD_ROWS_BUDGET, HeldRows, Row};
use super::hasher::{Hasher, MarkReply, Marked};
use super::{
    AcquireError, AcquireOptions, JSON, PartCheckpoint, Run, Streamed, part_key, sink_error,
};
use crate::fetch::{FetchPolicy, VerifiedBlock, fetch_verified};
use crate::listing::Lister;

/// One block of a part: listed by EBS (fetched) or a zero block of the raw layout.
enum Slot {
    Listed(ListedBlock),
    Zero(u64),
}

/// One planned read: a slot of part `part` (none for the one empty part of a volume with no
/// data), whether it is the part's last, and where listing resumes after that part.
struct Planned {
    part: u32,
    slot: Option<Slot>,
    last: bool,
    next_index: u64,
    /// The part ends at this volume offset (raw layout: zero-filled up to it).
    end_offset: Option<u64>,
}

/// A planned read, done: the block fetched and verified, or zeros, or nothing (empty part).
enum Piece {
    Data(VerifiedBlock),
    Zero(u64),
    Nothing,
}

/// A part being filled from the read stream, in order.
struct Assembling {
    number: u32,
    body: PartBody,
    rows: Vec<Row>,
    discarded: u64,
    object_offset: u64,
    next_index: u64,
}

/// A part S3 holds, its checkpoint not yet written: the rest of its assembly (the body is
/// dropped once stored).
struct Uploaded {
    part: StoredPart,
    rows: Vec<Row>,
    discarded: u64,
    object_offset: u64,
    next_index: u64,
}

/// A part stored and checkpointed: S3's record of it, its block-map rows, and the answers
/// discarded while reading it.
struct PartStored {
    part: StoredPart,
    rows: Vec<Row>,
    discarded: u64,
}

/// Checkpoint writes in flight per volume at most (each holds only its rows). Checkpoints are
/// written at once, in any order: a resume starts after the longest run of parts `1..=n` that
/// all have one, so a part stored whose checkpoint was not written is read again.
const CHECKPOINTS_IN_FLIGHT: usize = 32;

/// Parts assembled whose hashes the hashing thread has not reached, at most: reads wait
/// beyond that, so the blocks queued for hashing stay bounded when hashing is the slower stage.
pub const HASH_BACKLOG_PARTS: usize = 2;

/// Where the part planner stands.
struct Planner {
    lister: Lister,
    queue: VecDeque<ListedBlock>,
    next_index: u64,
    number: u32,
    first: bool,
}

/// UploadPart calls the engine makes per part (each one retried by the SDK itself).
const PART_ATTEMPTS: u32 = 2;

/// A zero block of the raw layout: one static buffer, shared by every zero slot.
static ZERO_BLOCK: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

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
            Err(SourceError::Throttled(..) | SourceError::Transient(_))
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
        let (upload, stored) = sink.open_upload(data_key).await.map_err(sink_error(
            snapshot_id,
            "the data upload",
            data_key,
        ))?;
        let (resumed, checkpoint) = self.resume_point(&stored).await?;
        let resumed_parts = resumed.len() as u32;
        let hashes = self.hashes_after(checkpoint.as_ref())?;
        let next_index = checkpoint.as_ref().map(|c| c.next_index).unwrap_or(0);
        let mut object_offset = checkpoint
            .as_ref()
            .map(|c| c.object_offset + c.size)
            .unwrap_or(0);
        self.progress
            .position(snapshot_id, hashes.image.position(), self.volume_bytes);
        let raw = self.options.layout == Layout::Raw;
        let hasher = Hasher::spawn(hashes, raw).map_err(|e| {
            self.checkpoint_error(data_key, format!("starting the hashing thread: {e}"))
        })?;
        let (lister, queue) = first.resume_at(snapshot_id, next_index, self.options.list_page);
        let planner = Planner {
            lister,
            queue,
            next_index,
            number: resumed_parts + 1,
            first: resumed.is_empty(),
        };

        // Plan -> read: one stream of verified blocks in index order across parts.
        let planned = futures::stream::try_unfold(planner, move |mut planner| async move {
            let parts = self.plan_part(&mut planner).await?;
            Ok::<_, AcquireError>(parts.map(|p| {
                (
                    futures::stream::iter(p.into_iter().map(Ok::<_, AcquireError>)),
                    planner,
                )
            }))
        })
        .try_flatten();
        let reads = planned
            .map(move |planned| async move {
                let planned = planned?;
                let piece = match &planned.slot {
                    Some(Slot::Listed(block)) => Piece::Data(
                        fetch_verified(
                            self.source,
                            self.limits,
                            &self.options.policy,
                            snapshot_id,
                            block,
                        )
                        .await?,
                    ),
                    Some(Slot::Zero(index)) => Piece::Zero(*index),
                    None => Piece::Nothing,
                };
                Ok::<_, AcquireError>((planned, piece))
            })
            .buffered(self.options.window.max(1));
        let mut reads = pin!(reads);

        // Assemble -> upload, several parts at once.
        let max_uploads = self.options.uploads.max(1);
        let mut uploads = FuturesUnordered::new();
        let mut current: Option<Assembling> = None;
        let mut done: BTreeMap<u32, StoredPart> = BTreeMap::new();
        let mut held = HeldRows::new(HELD_ROWS_BUDGET);
        let (mut fetched_now, mut discarded) = (0u64, 0u64);
        let mut reading = true;
        // After a failure nothing new starts, but the parts uploading finish and write their
        // checkpoints: a resume then starts after them instead of fetching them again.
        let mut failure: Option<AcquireError> = None;
        let mut checkpoints = FuturesUnordered::new();
        // A part's checkpoint needs its upload and its hash states, which finish in any order.
        let mut hashing = FuturesUnordered::new();
        let mut uploaded: BTreeMap<u32, Uploaded> = BTreeMap::new();
        let mut hashed: BTreeMap<u32, Marked> = BTreeMap::new();
        while (reading && failure.is_none())
            || !uploads.is_empty()
            || !hashing.is_empty()
            || !checkpoints.is_empty()
        {
            tokio::select! {
                Some(stored) = uploads.next(), if !uploads.is_empty() => match stored {
                    // The upload slot is free again; the checkpoint is written beside the
                    // next uploads, not before them.
                    Ok(part) => {
                        let part: Uploaded = part;
                        let number = part.part.number;
                        tracing::debug!(snapshot_id, part = number, uploading = uploads.len(), "part uploaded");
                        match hashed.remove(&number) {
                            Some(marked) => checkpoints.push(self.write_checkpoint(part, marked)),
                            None => {
                                uploaded.insert(number, part);
                            }
                        }
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
                Some((number, marked)) = hashing.next(), if !hashing.is_empty() => match marked {
                    Ok(marked) => {
                        tracing::debug!(snapshot_id, part = number, "part hashed");
                        match uploaded.remove(&number) {
                            Some(part) => checkpoints.push(self.write_checkpoint(part, marked)),
                            None => {
                                hashed.insert(number, marked);
                            }
                        }
                    }
                    Err(why) => {
                        failure.get_or_insert(self.checkpoint_error(&part_key(self.prefix, number), why));
                    }
                },
                Some(stored) = checkpoints.next(), if !checkpoints.is_empty() => match stored {
                    Ok(PartStored { part, rows, discarded: part_discarded }) => {
                        fetched_now += rows.len() as u64;
                        discarded += part_discarded;
                        tracing::info!(snapshot_id, part = part.number, blocks = rows.len(), "part stored");
                        // The block map is assembled from these rows: kept, it need not read
                        // this part's checkpoint back.
                        held.hold(part.number, rows);
                        done.insert(part.number, part);
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
                next = reads.next(), if reading
                    && failure.is_none()
                    && uploads.len() < max_uploads
                    && hashing.len() < HASH_BACKLOG_PARTS
                    && checkpoints.len() < CHECKPOINTS_IN_FLIGHT => {
                    let Some(read) = next else {
                        reading = false;
                        continue;
                    };
                    match read.and_then(|(planned, piece)| {
                        self.assemble(&mut current, &hasher, planned, piece, &mut object_offset)
                    }) {
                        Ok(Some((part, mark))) => {
                            tracing::debug!(snapshot_id, part = part.number, uploading = uploads.len(), checkpointing = checkpoints.len(), "part assembled");
                            let number = part.number;
                            hashing.push(async move { (number, mark.wait().await) });
                            uploads.push(self.store_part(&upload, part));
                        }
                        Ok(None) => {}
                        Err(e) => failure = Some(e),
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let hashes = hasher
            .finish()
            .await
            .map_err(|why| self.checkpoint_error(data_key, why))?;
        let mut parts = resumed;
        parts.extend(done.into_values());

        let completed = sink
            .complete_upload(data_key, &upload, &parts)
            .await
            .map_err(sink_error(snapshot_id, "the data object", data_key))?;
        if let Some(reported) = &completed.checksum {
            let refused = |why: String| AcquireError::Sink {
                snapshot_id: snapshot_id.into(),
                what: "the data object",
                key: data_key.clone(),
                source: Box::new(CloudError::new(
                    ErrorKind::Invalid,
                    "CompleteMultipartUpload",
                    why,
                )),
            };
            let ours = object_checksum(upload.algorithm, &parts).map_err(refused)?;
            if reported != &ours {
                return Err(refused(format!(
                    "S3 reports {reported}, the parts sent make {ours}"
                )));
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
            checksum: completed.checksum,
        })
    }

    /// Put one read in its part; when it is the part's last, return the part to upload with
    /// the hash mark it waits for.
    fn assemble(
        &self,
        current: &mut Option<Assembling>,
        hasher: &Hasher,
        planned: Planned,
        piece: Piece,
        object_offset: &mut u64,
    ) -> Result<Option<(Assembling, MarkReply)>, AcquireError> {
        let part = current.get_or_insert_with(|| Assembling {
            number: planned.part,
            body: PartBody::with_capacity(self.per_part as usize),
            rows: Vec::new(),
            discarded: 0,
            object_offset: *object_offset,
            next_index: planned.next_index,
        });
        let end = match piece {
            Piece::Data(block) => {
                let offset = block.index * BLOCK_SIZE;
                hasher.block(offset, block.data.clone());
                part.body.push(block.data);
                part.rows
                    .push((block.index, block.sha256, block.aws_checksum));
                part.discarded += u64::from(block.discarded);
                Some(offset + BLOCK_SIZE)
            }
            Piece::Zero(index) => {
                part.body.push(Bytes::from_static(&ZERO_BLOCK));
                Some((index + 1) * BLOCK_SIZE)
            }
            Piece::Nothing => None,
        };
        if let Some(end) = end {
            self.progress
                .position(self.snapshot_id, end, self.volume_bytes);
        }
        if !planned.last {
            return Ok(None);
        }
        let part = current
            .take()
            .ok_or_else(|| self.checkpoint_error(&self.data_key, "a part ended before it began"))?;
        *object_offset += part.body.len();
        Ok(Some((part, hasher.mark(planned.end_offset))))
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

    /// The reads of the next part; `None` when every part is planned.
    async fn plan_part(&self, planner: &mut Planner) -> Result<Option<Vec<Planned>>, AcquireError> {
        let Some((slots, end_index)) = self
            .next_part(
                &mut planner.lister,
                &mut planner.queue,
                planner.next_index,
                planner.first,
            )
            .await?
        else {
            return Ok(None);
        };
        planner.first = false;
        let part = planner.number;
        planner.number += 1;
        planner.next_index = end_index.unwrap_or_else(|| match slots.last() {
            Some(Slot::Listed(b)) => b.index + 1,
            Some(Slot::Zero(index)) => index + 1,
            None => planner.next_index,
        });
        let next_index = planner.next_index;
        let end_offset = end_index.map(|end| (end * BLOCK_SIZE).min(self.volume_bytes));
        if slots.is_empty() {
            return Ok(Some(vec![Planned {
                part,
                slot: None,
                last: true,
                next_index,
                end_offset,
            }]));
        }
        let count = slots.len();
        Ok(Some(
            slots
                .into_iter()
                .enumerate()
                .map(|(i, slot)| Planned {
                    part,
                    slot: Some(slot),
                    last: i + 1 == count,
                    next_index,
                    end_offset,
                })
                .collect(),
        ))
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

    /// Upload one assembled part, retried from the bytes it holds (dropped once stored).
    async fn store_part(
        &self,
        upload: &Upload,
        part: Assembling,
    ) -> Result<Uploaded, AcquireError> {
        let Assembling {
            number,
            body,
            rows,
            discarded,
            object_offset,
            next_index,
        } = part;
        let len = body.len();
        let stored = self.upload_with_retries(upload, number, body).await?;
        if stored.size != len {
            return Err(AcquireError::Sink {
                snapshot_id: self.snapshot_id.into(),
                what: "a data part",
                key: self.data_key.clone(),
                source: Box::new(CloudError::new(
                    ErrorKind::Invalid,
                    "UploadPart",
                    format!("part {number} holds {} bytes, {len} were sent", stored.size),
                )),
            });
        }
        Ok(Uploaded {
            part: stored,
            rows,
            discarded,
            object_offset,
            next_index,
        })
    }

    /// Write a stored part's checkpoint, with the hash states after it.
    async fn write_checkpoint(
        &self,
        uploaded: Uploaded,
        (image_hash, object_hash): Marked,
    ) -> Result<PartStored, AcquireError> {
        let Uploaded {
            part,
            rows,
            discarded,
            object_offset,
            next_index,
        } = uploaded;
        let key = part_key(self.prefix, part.number);
        let checkpoint = PartCheckpoint {
            part: part.number,
            size: part.size,
            checksum: part.checksum.clone(),
            object_offset,
            next_index,
            image_hash,
            object_hash,
            blocks: rows,
        };
        let bytes = serde_json::to_vec(&checkpoint).map_err(|e| self.checkpoint_error(&key, e))?;
        self.sink
            .put_version(&key, bytes, JSON)
            .await
            .map_err(sink_error(self.snapshot_id, "a part checkpoint", &key))?;
        Ok(PartStored {
            part,
            rows: checkpoint.blocks,
            discarded,
        })
    }

    /// UploadPart, a transient failure retried from the same bytes after a jittered backoff.
    /// The S3 adapter's SDK client already retries each call several times with backoff (the
    /// body is retryable), so the engine adds one more round of those, not ten.
    async fn upload_with_retries(
        &self,
        upload: &Upload,
        number: u32,
        body: PartBody,
    ) -> Result<StoredPart, AcquireError> {
        let policy = &self.options.policy;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .sink
                .upload_part(&self.data_key, upload, number, body.clone())
                .await
            {
                Ok(part) => return Ok(part),
                Err(e) if e.is_transient() && attempt < PART_ATTEMPTS => {
                    tracing::warn!(snapshot_id = self.snapshot_id, part = number, attempt, error = %e, "part upload failed; sending it again");
                    tokio::time::sleep(policy.delay(attempt)).await;
                }
                Err(e) => {
                    return Err(sink_error(self.snapshot_id, "a data part", &self.data_key)(
                        e,
                    ));
                }
            }
        }
    }
}
