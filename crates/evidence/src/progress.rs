//! Progress of byte-wise work, reported to whoever shows it.

/// Where a long byte-wise task (an acquisition, an export, a verification) has got to, for
/// progress bars and lines; the binary implements it (indicatif on a terminal).
pub trait ByteProgress: Send + Sync {
    /// The volume or object `id` is done up to byte `position` of `total`.
    fn position(&self, id: &str, position: u64, total: u64);
}

/// Progress that reports nothing.
pub struct NoProgress;

impl ByteProgress for NoProgress {
    fn position(&self, _: &str, _: u64, _: u64) {}
}
