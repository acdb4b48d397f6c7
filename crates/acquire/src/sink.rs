//! The evidence sink seam: a multipart upload that can be found again after a crash, plus small
//! objects (checkpoints, block map) beside it.

use std::future::Future;

use tokio::sync::mpsc;

/// A part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPart {
    /// Part number, from 1.
    pub number: u32,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the part, base64 (as S3 reports it).
    pub sha256: String,
    /// The part's ETag (CompleteMultipartUpload names parts by it).
    #[serde(default)]
    pub etag: String,
}

/// A completed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedObject {
    /// Version id.
    pub version_id: Option<String>,
    /// S3's composite checksum (`base64(sha256(part digests))-N`), when reported.
    pub composite_sha256: Option<String>,
}

/// A failed sink call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Reading stored evidence (S3, memory, or a downloaded case folder).
pub trait EvidenceReader: Send + Sync {
    /// `len` bytes of the object at `key` from byte `start` (export reads in bounded ranges).
    fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, SinkError>> + Send;
    /// Read a small object, `None` when absent.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, SinkError>> + Send;
}

/// Where acquired data goes (S3 Object Lock in production, memory in tests).
pub trait EvidenceSink: EvidenceReader {
    /// The open multipart upload for `key` and the parts it holds, creating the upload (with
    /// its Object Lock retention) when there is none.
    fn open_upload(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(String, Vec<StoredPart>), SinkError>> + Send;
    /// Upload part `number` of exactly `len` bytes, streamed from `body`.
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        len: u64,
        body: mpsc::Receiver<Vec<u8>>,
    ) -> impl Future<Output = Result<StoredPart, SinkError>> + Send;
    /// Complete the upload from `parts`.
    fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> impl Future<Output = Result<CompletedObject, SinkError>> + Send;
    /// The completed object at `key` (version and composite checksum), `None` when absent.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<CompletedObject>, SinkError>> + Send;
    /// Abort the upload (nothing half-written is left behind).
    fn abort(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Store a small object (checkpoint, block map chunk) under Object Lock.
    fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), SinkError>> + Send;
}
