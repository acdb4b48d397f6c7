//! The image and data-object hashes of one volume, each on a thread of its own.
//!
//! The pipeline hands every listed block over (a shared `Bytes`, no copy) with its offset, and
//! never waits for the threads: zero runs reach the image thread as offsets, not buffers (the
//! image hasher fills a gap with zeros itself), so a sparse 1 TiB volume costs hashing time on
//! that thread only, while reads and uploads go on. The data object's hash runs on a second
//! thread: SHA-256 is sequential, so each hash is bound by one core, and the image hash (zero
//! runs included) is already the longer one. A part asks for the hash states after its last
//! block (a mark, answered in order by each thread) before it writes its checkpoint; the tail
//! after the last block is hashed on the image thread too, never on the async runtime.
//!
//! In the raw layout the data object is the image, so one hash serves both and there is no
//! second thread.

use std::sync::mpsc;

use bytes::Bytes;
use forensnap_core::hashing::{ImageHasher, ResumableSha256, Sha256Checkpoint};
use tokio::sync::oneshot;

use super::Hashes;

/// The hash states after a part: image, data object.
pub(super) type Marked = (Sha256Checkpoint, Sha256Checkpoint);

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum ImageJob {
    Block {
        offset: u64,
        data: Bytes,
    },
    /// The state after everything sent so far, zero-filled up to `through` first.
    Mark {
        through: Option<u64>,
        reply: Reply<Sha256Checkpoint>,
    },
    /// The hasher as it stands (it zero-fills the tail on `finish`).
    Finish {
        reply: Reply<ImageHasher>,
    },
}

enum ObjectJob {
    Block(Bytes),
    Mark(Reply<Sha256Checkpoint>),
    Finish(Reply<ResumableSha256>),
}

/// Handle to one volume's hashing threads; dropping it ends them.
pub(super) struct Hasher {
    image: mpsc::Sender<ImageJob>,
    /// `None` in the raw layout (the object is the image).
    object: Option<mpsc::Sender<ObjectJob>>,
}

/// The hash states after a part, as the threads will answer them.
pub(super) struct MarkReply {
    image: oneshot::Receiver<Result<Sha256Checkpoint, String>>,
    object: Option<oneshot::Receiver<Result<Sha256Checkpoint, String>>>,
}

impl MarkReply {
    /// Wait for the states (image, data object).
    pub(super) async fn wait(self) -> Result<Marked, String> {
        let image = self.image.await.map_err(|_| gone())??;
        let object = match self.object {
            Some(object) => object.await.map_err(|_| gone())??,
            None => image.clone(),
        };
        Ok((image, object))
    }
}

/// Why a hashing thread could not answer.
pub(super) fn gone() -> String {
    "the hashing thread stopped".into()
}

impl Hasher {
    /// Start hashing from `hashes` (fresh, or restored from a checkpoint). `raw`: the data
    /// object is the image.
    pub(super) fn spawn(hashes: Hashes, raw: bool) -> std::io::Result<Self> {
        let Hashes { image, object } = hashes;
        let (image_jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("forensnap-image-hash".into())
            .spawn(move || run_image(image, rx))?;
        let object = if raw {
            None
        } else {
            let (object_jobs, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("forensnap-object-hash".into())
                .spawn(move || run_object(object, rx))?;
            Some(object_jobs)
        };
        Ok(Hasher {
            image: image_jobs,
            object,
        })
    }

    /// Hash a listed block at `offset` (blocks arrive in index order).
    pub(super) fn block(&self, offset: u64, data: Bytes) {
        // A stopped thread answers the next mark with an error.
        if let Some(object) = &self.object {
            let _ = object.send(ObjectJob::Block(data.clone()));
        }
        let _ = self.image.send(ImageJob::Block { offset, data });
    }

    /// The states after everything sent so far (the image zero-filled to `through` first).
    pub(super) fn mark(&self, through: Option<u64>) -> MarkReply {
        let (reply, image) = oneshot::channel();
        let _ = self.image.send(ImageJob::Mark { through, reply });
        let object = self.object.as_ref().map(|jobs| {
            let (reply, rx) = oneshot::channel();
            let _ = jobs.send(ObjectJob::Mark(reply));
            rx
        });
        MarkReply { image, object }
    }

    /// The states at the end.
    pub(super) async fn finish(self) -> Result<Hashes, String> {
        let (reply, image) = oneshot::channel();
        let _ = self.image.send(ImageJob::Finish { reply });
        let object = self.object.map(|jobs| {
            let (reply, rx) = oneshot::channel();
            let _ = jobs.send(ObjectJob::Finish(reply));
            rx
        });
        let image = image.await.map_err(|_| gone())??;
        let object = match object {
            Some(object) => object.await.map_err(|_| gone())??,
            // The raw layout: the object's hash is the image's.
            None => ResumableSha256::restore(&image.checkpoint()).map_err(|e| e.to_string())?,
        };
        Ok(Hashes { image, object })
    }
}

fn run_image(mut image: ImageHasher, jobs: mpsc::Receiver<ImageJob>) {
    // The first ordering error, reported at the next mark (the run stops there).
    let mut broken: Option<String> = None;
    while let Ok(job) = jobs.recv() {
        match job {
            ImageJob::Block { offset, data } => {
                if broken.is_none()
                    && let Err(e) = image.block(offset, &data)
                {
                    broken = Some(format!("blocks listed out of order: {e}"));
                }
            }
            ImageJob::Mark { through, reply } => {
                if let (Some(end), None) = (through, &broken)
                    && let Err(e) = image.block(end, &[])
                {
                    broken = Some(format!("part end out of order: {e}"));
                }
                let _ = reply.send(match &broken {
                    Some(why) => Err(why.clone()),
                    None => Ok(image.checkpoint()),
                });
            }
            ImageJob::Finish { reply } => {
                let _ = reply.send(match broken.take() {
                    Some(why) => Err(why),
                    None => Ok(image),
                });
                return;
            }
        }
    }
}

fn run_object(mut object: ResumableSha256, jobs: mpsc::Receiver<ObjectJob>) {
    while let Ok(job) = jobs.recv() {
        match job {
            ObjectJob::Block(data) => object.update(&data),
            ObjectJob::Mark(reply) => {
                let _ = reply.send(Ok(object.checkpoint()));
            }
            ObjectJob::Finish(reply) => {
                let _ = reply.send(Ok(object));
                return;
            }
        }
    }
}
