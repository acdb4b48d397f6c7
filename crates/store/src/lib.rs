//! forensnap's evidence store: the object operations forensnap performs on its evidence bucket,
//! behind three traits with one error type, so that orchestration, verification and reports
//! never name an SDK type or an AWS error code.
//!
//! * [`EvidenceRead`]  -- get (absent is `None`), ranged get, list.
//! * [`EvidenceWrite`] -- a put that never overwrites, a put of a new version, multipart uploads
//!   found again after a crash, HEAD of a completed object.
//! * [`EvidenceAudit`] -- the bucket's Object Lock configuration, every version under a prefix
//!   (delete markers included), one version's retention and legal hold.
//! * [`Handoff`] -- an upload a host without credentials fills through presigned part URLs.
//! * [`Transfer`] -- the transfer bucket: what a host is handed and must not be kept.
//! * [`body`]   -- [`PartBody`]: a multipart part held as shared chunks, so a failed upload is
//!   sent again from the same bytes.
//! * [`error`]  -- [`CloudError`] with an [`ErrorKind`]: the adapters classify AWS's codes once.
//! * [`types`]  -- what the calls return.
//! * [`folder`] -- a downloaded case folder (`aws s3 sync`), read and audited offline.
//! * [`memory`] -- an in-memory bucket for unit tests (feature `memory`).
//!
//! The S3 implementation lives with the other AWS adapters (`forensnap-aws`).

pub mod body;
pub mod error;
pub mod folder;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod types;

use std::future::Future;

pub use error::{CloudError, ErrorKind, classify};
pub use folder::FolderStore;
#[cfg(any(test, feature = "memory"))]
pub use memory::MemoryStore;
pub use types::{
    BucketLock, Called, CompletedObject, LockState, ObjectChecksum, PartAlgorithm, PartChecksum,
    PartHasher, PendingUpload, Stored, StoredPart, Upload, Version, object_checksum,
};

pub use body::PartBody;

/// Reading stored evidence (S3, memory, or a downloaded case folder).
pub trait EvidenceRead: Send + Sync {
    /// A whole object, `None` when the key does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, CloudError>> + Send;
    /// `len` bytes of the object at `key` from byte `start` (fewer at its end).
    fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, CloudError>> + Send;
    /// Every key under `prefix`, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
}

/// Writing evidence under Object Lock (COMPLIANCE retention and, when configured, a legal hold on
/// every object, its SHA-256 checked by the store).
pub trait EvidenceWrite: EvidenceRead {
    /// The bucket written to (custody events name `s3://bucket/key`).
    fn bucket(&self) -> &str;
    /// Store a new object; refuses with [`ErrorKind::Exists`] when the key exists.
    fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<Called<Stored>, CloudError>> + Send;
    /// Store a new version of `key` (resume state rewritten when a part is redone; the older
    /// version stays locked).
    fn put_version(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<Called<Stored>, CloudError>> + Send;
    /// The open multipart upload for `key` and the parts it holds, creating the upload (with its
    /// Object Lock retention, parts checked with CRC-64/NVME) when there is none. An upload
    /// opened earlier keeps the part checksum it was created with.
    fn open_upload(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(Upload, Vec<StoredPart>), CloudError>> + Send;
    /// Upload part `number` from `body` (its length announced exactly), its checksum in the
    /// upload's algorithm checked by the store. The body is shared: the caller keeps a clone to
    /// send again if this fails.
    fn upload_part(
        &self,
        key: &str,
        upload: &Upload,
        number: u32,
        body: PartBody,
    ) -> impl Future<Output = Result<StoredPart, CloudError>> + Send;
    /// Complete the upload from `parts`, with the whole object's checksum where the algorithm has
    /// one (the store checks it).
    fn complete_upload(
        &self,
        key: &str,
        upload: &Upload,
        parts: &[StoredPart],
    ) -> impl Future<Output = Result<CompletedObject, CloudError>> + Send;
    /// Every multipart upload open for a key under `prefix`, with its parts counted.
    fn pending_uploads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<PendingUpload>, CloudError>> + Send;
    /// End the open multipart upload `upload_id` of `key`: its parts are discarded, nothing
    /// stored is touched. [`ErrorKind::NotFound`] when it had ended already.
    fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<Called<()>, CloudError>> + Send;
    /// The object at `key` as HeadObject gives it: its latest version and S3's checksum where
    /// reported (a multipart object's), `None` when absent.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<CompletedObject>, CloudError>> + Send;
}

/// What an auditor asks of the bucket: Object Lock, versions, retention.
pub trait EvidenceAudit: EvidenceRead {
    /// Object Lock configuration and versioning of the bucket.
    fn bucket_lock(&self) -> impl Future<Output = Result<Called<BucketLock>, CloudError>> + Send;
    /// Every stored version under `prefix`, delete markers included, sorted by key and version;
    /// empty where there are no versions to ask about (a folder).
    fn versions(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Version>, CloudError>> + Send;
    /// The Object Lock state of one version.
    fn lock(
        &self,
        key: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<LockState, CloudError>> + Send;
}

/// One part of a handed-off upload, as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffPart {
    /// Part number, from 1.
    pub number: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, as CompleteMultipartUpload wants it.
    pub etag: String,
}

/// An object written by a party that holds no credentials (a suspect host): a multipart upload
/// whose parts arrive through URLs presigned with the store's own credentials, one URL per part,
/// short-lived; the store completes it afterwards from the parts it finds. The parts carry no
/// S3 checksum (the sender computes none): the object is hashed once it is complete.
pub trait Handoff: EvidenceWrite {
    /// Create the multipart upload of `key` (the bucket's Object Lock retention, the legal hold
    /// when configured); its upload id.
    fn open_handoff(&self, key: &str) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// A URL that stores part `number` of `upload_id` of `key`, valid for `expires`.
    fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// A URL that reads `key`, valid for `expires`.
    fn presign_get(
        &self,
        key: &str,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// The parts `upload_id` holds, in order.
    fn handoff_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<Vec<HandoffPart>, CloudError>> + Send;
    /// Complete `upload_id` from `parts`; the object's version id.
    fn complete_handoff(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[HandoffPart],
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
}

/// The transfer bucket: short-lived objects handed to a suspect host (a memory capture's plan of
/// presigned part URLs) that must not be kept, so never the locked evidence bucket. Each object
/// is deleted once its capture ends; the bucket's lifecycle rule removes any a killed run left.
pub trait Transfer: Send + Sync {
    /// The bucket's name.
    fn transfer_bucket(&self) -> &str;
    /// Store `bytes` at `key` (a new, unguessable key per capture).
    fn put_transfer(
        &self,
        key: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// A URL that reads `key`, valid for `expires`.
    fn presign_transfer(
        &self,
        key: &str,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Remove `key` (absent is not an error).
    fn delete_transfer(&self, key: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
