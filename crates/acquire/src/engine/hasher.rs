//! The image and data-object hashes of one volume, on a thread of their own.
//!
//! The pipeline hands every listed block over (a shared `Bytes`, no copy) with its offset, and
//! never waits for the thread: zero runs reach it as offsets, not buffers (the image hasher
//! fills a gap with zeros itself), so a sparse 1 TiB volume costs hashing time on this thread
//! only, while reads and uploads go on. A part asks for the hash states after its last block (a
//! mark, answered in order) before it writes its checkpoint; the tail after the last block is
//! hashed here too, never on the async runtime.
//!
//! In the raw layout the data object is the image, so one hash serves both. (The two hashes
//! were tried on a thread each: on two vCPUs that cost 9% more CPU for no throughput, and one
//! thread already hashes a volume faster than the per-snapshot quota reads it, at 60%
//! allocation, wherever a core is free.)

use std::sync::mpsc;

use bytes::Bytes;
use forensnap_core::hashing::{ResumableSha256, Sha256Checkpoint};
use tokio::sync::oneshot;

use super::Hashes;

/// The hash states after a part: image, data object.
pub(super) type Marked = (Sha256Checkpoint, Sha256Checkpoint);

/// The hash states after a part, as the thread will answer them.
pub(super) struct MarkReply(oneshot::Receiver<Result<Marked, String>>);

impl MarkReply {
    /// Wait for the states (image, data object).
    pub(super) async fn wait(self) -> Result<Marked, String> {
        self.0.await.map_err(|_| gone())?
    }
}

enum Job {
    Block {
        offset: u64,
        data: Bytes,
    },
    /// States after everything sent so far, the image zero-filled up to `through` first.
    Mark {
        through: Option<u64>,
        reply: oneshot::Sender<Result<Marked, String>>,
    },
    /// The hash states at the end: the image hasher left to zero-fill the tail on `finish`.
    Finish {
        reply: oneshot::Sender<Result<Hashes, String>>,
    },
}

/// Handle to one volume's hashing thread; dropping it ends the thread.
pub(super) struct Hasher {
    jobs: mpsc::Sender<Job>,
}

/// Why the hashing thread could not answer.
pub(super) fn gone() -> String {
    "the hashing thread stopped".into()
}

impl Hasher {
    /// Start hashing from `hashes` (fresh, or restored from a checkpoint). `raw`: the data
    /// object is the image.
    pub(super) fn spawn(hashes: Hashes, raw: bool) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("forensnap-hash".into())
            .spawn(move || run(hashes, raw, rx))?;
        Ok(Hasher { jobs })
    }

    /// Hash a listed block at `offset` (blocks arrive in index order).
    pub(super) fn block(&self, offset: u64, data: Bytes) {
        // A stopped thread answers the next mark with an error.
        let _ = self.jobs.send(Job::Block { offset, data });
    }

    /// The states after everything sent so far (the image zero-filled to `through` first).
    pub(super) fn mark(&self, through: Option<u64>) -> MarkReply {
        let (reply, rx) = oneshot::channel();
        let _ = self.jobs.send(Job::Mark { through, reply });
        MarkReply(rx)
    }

    /// The states at the end.
    pub(super) async fn finish(self) -> Result<Hashes, String> {
        let (reply, rx) = oneshot::channel();
        let _ = self.jobs.send(Job::Finish { reply });
        rx.await.map_err(|_| gone())?
    }
}

fn run(mut hashes: Hashes, raw: bool, jobs: mpsc::Receiver<Job>) {
    // The first ordering error, reported at the next mark (the run stops there).
    let mut broken: Option<String> = None;
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Block { offset, data } => {
                if broken.is_some() {
                    continue;
                }
                match hashes.image.block(offset, &data) {
                    Ok(()) if !raw => hashes.object.update(&data),
                    Ok(()) => {}
                    Err(e) => broken = Some(format!("blocks listed out of order: {e}")),
                }
            }
            Job::Mark { through, reply } => {
                if let (Some(end), None) = (through, &broken)
                    && let Err(e) = hashes.image.block(end, &[])
                {
                    broken = Some(format!("part end out of order: {e}"));
                }
                let answer = match &broken {
                    Some(why) => Err(why.clone()),
                    None => {
                        let image = hashes.image.checkpoint();
                        let object = if raw {
                            image.clone()
                        } else {
                            hashes.object.checkpoint()
                        };
                        Ok((image, object))
                    }
                };
                let _ = reply.send(answer);
            }
            Job::Finish { reply } => {
                let answer = match broken.take() {
                    Some(why) => Err(why),
                    None if raw => ResumableSha256::restore(&hashes.image.checkpoint())
                        .map(|object| Hashes {
                            image: hashes.image.clone(),
                            object,
                        })
                        .map_err(|e| e.to_string()),
                    None => Ok(hashes.clone()),
                };
                let _ = reply.send(answer);
                return;
            }
        }
    }
}
