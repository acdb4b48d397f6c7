//! An in-memory evidence bucket for unit tests: objects keep every version (as a versioned,
//! Object Locked bucket does), `put_new` refuses an existing key as `If-None-Match: *` makes S3
//! refuse it, multipart uploads survive a failed run as S3's do, and part failures can be
//! injected. A discarding store hashes part bytes and drops them, so a memory measurement sees
//! the engine, not the store.
//!
//! The store is a cloneable handle: clones share the same bucket. A handle can be made to die at
//! a chosen write ([`MemoryStore::dying_when`]): that write and every later one never finish, as
//! when the process is killed, while other handles (the next run) go on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::{
    BucketLock, Called, CloudError, CompletedObject, ErrorKind, EvidenceAudit, EvidenceRead,
    EvidenceWrite, LockState, PartAlgorithm, PartBody, PendingUpload, Stored, StoredPart, Upload,
    Version, object_checksum,
};

/// The bucket name the memory store reports.
pub const BUCKET: &str = "evidence";

/// Retention the memory store gives every object, days.
const RETENTION_DAYS: i64 = 30;

#[derive(Debug, Clone)]
struct ObjectVersion {
    version_id: String,
    bytes: Vec<u8>,
    lock: LockState,
}

#[derive(Debug)]
struct OpenUpload {
    key: String,
    algorithm: PartAlgorithm,
    parts: BTreeMap<u32, (StoredPart, Vec<u8>)>,
}

#[derive(Debug)]
struct Bucket {
    objects: BTreeMap<String, Vec<ObjectVersion>>,
    uploads: BTreeMap<String, OpenUpload>,
    /// The part checksum of uploads created from now on.
    part_algorithm: PartAlgorithm,
    /// Multipart objects as completed (what HeadObject reports).
    completed: BTreeMap<String, CompletedObject>,
    next_id: u64,
    /// Part numbers of data-object uploads that fail once each (transient, or for good).
    fail_parts: Vec<(u32, ErrorKind)>,
    lock: BucketLock,
    /// Seconds since the epoch that new objects are stamped with.
    now: i64,
}

/// An in-memory, versioned, Object Locked bucket.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    bucket: Arc<Mutex<Bucket>>,
    /// Drop part data after hashing it (memory measurements).
    discard_data: bool,
    /// Asked before every write of this handle: the process dies there (see
    /// [`MemoryStore::dying_when`]).
    dies: Option<Dies>,
}

/// Whether the process dies at the write of this key and these bytes.
type DiesWhen = dyn Fn(&str, &[u8]) -> bool + Send + Sync;

/// A handle's "the process dies here" rule and the signal it gives when it does.
#[derive(Clone)]
struct Dies {
    when: Arc<DiesWhen>,
    dead: Arc<std::sync::atomic::AtomicBool>,
    died: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Dies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dies")
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            bucket: Arc::new(Mutex::new(Bucket {
                objects: BTreeMap::new(),
                uploads: BTreeMap::new(),
                part_algorithm: PartAlgorithm::default(),
                completed: BTreeMap::new(),
                next_id: 0,
                fail_parts: Vec::new(),
                lock: BucketLock {
                    enabled: true,
                    default_mode: Some("COMPLIANCE".into()),
                    default_days: Some(RETENTION_DAYS as u32),
                    versioning: Some("Enabled".into()),
                },
                now: 1_800_000_000,
            })),
            discard_data: false,
            dies: None,
        }
    }
}

fn err(kind: ErrorKind, operation: &'static str, code: &str, message: String) -> CloudError {
    CloudError {
        kind,
        operation,
        code: Some(code.into()),
        message,
        request_id: Some("req-memory".into()),
    }
}

impl MemoryStore {
    /// An empty bucket with Object Lock (COMPLIANCE, 30 days) and versioning enabled.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Uploads created from now on check their parts with `algorithm` (an upload opened by an
    /// earlier version with SHA-256, for resume tests).
    pub fn create_uploads_with(&self, algorithm: PartAlgorithm) {
        self.state().part_algorithm = algorithm;
    }

    /// A store that hashes and drops part bytes (for memory measurements).
    pub fn discarding() -> Self {
        MemoryStore {
            discard_data: true,
            ..MemoryStore::default()
        }
    }

    /// Another handle on the same bucket whose writes stop for good, as a killed process stops,
    /// from the first write for which `when(key, bytes)` holds (bytes are empty for the multipart
    /// calls but parts): that write and every later one of this handle never finish, and the
    /// returned `Notify` is signalled. Other handles go on (the next run of the process).
    pub fn dying_when(
        &self,
        when: impl Fn(&str, &[u8]) -> bool + Send + Sync + 'static,
    ) -> (MemoryStore, Arc<tokio::sync::Notify>) {
        let died = Arc::new(tokio::sync::Notify::new());
        let handle = MemoryStore {
            dies: Some(Dies {
                when: Arc::new(when),
                dead: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                died: died.clone(),
            }),
            ..self.clone()
        };
        (handle, died)
    }

    /// Before a write: hang for ever if this handle's process has died.
    async fn write(&self, key: &str, bytes: &[u8]) {
        use std::sync::atomic::Ordering;
        let Some(dies) = &self.dies else {
            return;
        };
        if (dies.when)(key, bytes) {
            dies.dead.store(true, Ordering::SeqCst);
        }
        if dies.dead.load(Ordering::SeqCst) {
            dies.died.notify_one();
            std::future::pending::<()>().await;
        }
    }

    fn state(&self) -> MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the bucket's Object Lock configuration (a test of a misconfigured bucket).
    pub fn set_bucket_lock(&self, lock: BucketLock) {
        self.state().lock = lock;
    }

    /// The next upload of data part `number` (of a `data/` object other than the block map)
    /// fails once with a transient error (S3's `InternalError`): a retry succeeds.
    pub fn fail_part_once(&self, number: u32) {
        self.state().fail_parts.push((number, ErrorKind::Transient));
    }

    /// The next upload of data part `number` is refused once with an error no retry helps
    /// (`AccessDenied`): the run stops there, as a killed one would, and the next run resumes.
    pub fn stop_at_part(&self, number: u32) {
        self.state().fail_parts.push((number, ErrorKind::Denied));
    }

    /// The latest version's bytes of an object.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.state()
            .objects
            .get(key)
            .and_then(|v| v.last())
            .map(|v| v.bytes.clone())
    }

    /// Remove an object, every version (a test that simulates a crash before a write).
    pub fn remove(&self, key: &str) {
        let mut state = self.state();
        state.objects.remove(key);
        state.completed.remove(key);
    }

    /// Replace the latest version's bytes in place (a test that tampers with stored evidence).
    pub fn replace(&self, key: &str, bytes: Vec<u8>) {
        let mut state = self.state();
        match state.objects.get_mut(key).and_then(|v| v.last_mut()) {
            Some(version) => version.bytes = bytes,
            None => {
                let version = Self::version(&mut state, bytes);
                state.objects.insert(key.into(), vec![version]);
            }
        }
    }

    /// Keys of stored objects under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.state()
            .objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Multipart uploads still open.
    pub fn open_uploads(&self) -> usize {
        self.state().uploads.len()
    }

    fn version(state: &mut Bucket, bytes: Vec<u8>) -> ObjectVersion {
        state.next_id += 1;
        ObjectVersion {
            version_id: format!("v{}", state.next_id),
            bytes,
            lock: LockState {
                mode: Some("COMPLIANCE".into()),
                retain_until: Some(state.now + RETENTION_DAYS * 86_400),
                legal_hold: false,
                last_modified: Some(state.now),
            },
        }
    }

    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        overwrite: bool,
    ) -> Result<Called<Stored>, CloudError> {
        let mut state = self.state();
        if !overwrite && state.objects.contains_key(key) {
            return Err(err(
                ErrorKind::Exists,
                "PutObject",
                "PreconditionFailed",
                format!("{key} exists"),
            ));
        }
        let (sha256, size) = (hex::encode(Sha256::digest(&bytes)), bytes.len() as u64);
        let version = Self::version(&mut state, bytes);
        let stored = Stored {
            bucket: BUCKET.into(),
            key: key.into(),
            version_id: Some(version.version_id.clone()),
            sha256,
            size,
        };
        state.objects.entry(key.into()).or_default().push(version);
        Ok(Called::new(stored, Some("req-memory".into())))
    }
}

impl EvidenceRead for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        Ok(self.object(key))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, CloudError> {
        let object = self.object(key).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                "GetObject",
                "NoSuchKey",
                format!("{key} does not exist"),
            )
        })?;
        let start = (start as usize).min(object.len());
        let end = start.saturating_add(len as usize).min(object.len());
        Ok(object[start..end].to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        Ok(self.keys(prefix))
    }
}

impl EvidenceWrite for MemoryStore {
    fn bucket(&self) -> &str {
        BUCKET
    }

    async fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.write(key, &bytes).await;
        self.put(key, bytes, false)
    }

    async fn put_version(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.write(key, &bytes).await;
        self.put(key, bytes, true)
    }

    async fn open_upload(&self, key: &str) -> Result<(Upload, Vec<StoredPart>), CloudError> {
        self.write(key, &[]).await;
        let mut state = self.state();
        if let Some((id, upload)) = state.uploads.iter().find(|(_, u)| u.key == key) {
            return Ok((
                Upload {
                    id: id.clone(),
                    algorithm: upload.algorithm,
                },
                upload.parts.values().map(|(p, _)| p.clone()).collect(),
            ));
        }
        state.next_id += 1;
        let upload = Upload {
            id: format!("upload-{}", state.next_id),
            algorithm: state.part_algorithm,
        };
        state.uploads.insert(
            upload.id.clone(),
            OpenUpload {
                key: key.into(),
                algorithm: upload.algorithm,
                parts: BTreeMap::new(),
            },
        );
        Ok((upload, Vec::new()))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &Upload,
        number: u32,
        body: PartBody,
    ) -> Result<StoredPart, CloudError> {
        self.write(
            key,
            body.chunks().first().map(|c| &c[..]).unwrap_or_default(),
        )
        .await;
        let fail = {
            let mut state = self.state();
            let data = key.contains("data/") && !key.ends_with(".tsv");
            let at = state
                .fail_parts
                .iter()
                .position(|(n, _)| data && *n == number);
            at.map(|at| state.fail_parts.remove(at).1)
        };
        if let Some(kind) = fail {
            let code = match kind {
                ErrorKind::Denied => "AccessDenied",
                _ => "InternalError",
            };
            return Err(err(
                kind,
                "UploadPart",
                code,
                format!("UploadPart {number} failed (injected)"),
            ));
        }
        let data = if self.discard_data {
            Vec::new()
        } else {
            body.chunks().concat()
        };
        let size = body.len();
        let part = StoredPart {
            number,
            size,
            checksum: body.checksum(upload.algorithm),
            etag: format!("\"etag-{number}\""),
        };
        let mut state = self.state();
        let open = state.uploads.get_mut(&upload.id).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                "UploadPart",
                "NoSuchUpload",
                upload.id.clone(),
            )
        })?;
        if open.algorithm != upload.algorithm {
            return Err(err(
                ErrorKind::Invalid,
                "UploadPart",
                "InvalidRequest",
                format!(
                    "the upload was created with {}, the part sent {}",
                    open.algorithm, upload.algorithm
                ),
            ));
        }
        open.parts.insert(number, (part.clone(), data));
        Ok(part)
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload: &Upload,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, CloudError> {
        self.write(key, &[]).await;
        let mut state = self.state();
        let checksum = object_checksum(upload.algorithm, parts).map_err(|why| {
            err(
                ErrorKind::Invalid,
                "CompleteMultipartUpload",
                "InvalidPart",
                why,
            )
        })?;
        let upload = state.uploads.remove(&upload.id).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                "CompleteMultipartUpload",
                "NoSuchUpload",
                upload.id.clone(),
            )
        })?;
        let mut object = Vec::new();
        for part in parts {
            let invalid = |why: &str| {
                err(
                    ErrorKind::Invalid,
                    "CompleteMultipartUpload",
                    "InvalidPart",
                    format!("part {}: {why}", part.number),
                )
            };
            let (stored, data) = upload
                .parts
                .get(&part.number)
                .ok_or_else(|| invalid("not uploaded"))?;
            if stored != part {
                return Err(invalid("checksum differs"));
            }
            object.extend_from_slice(data);
        }
        // The stored parts' own digests (checked equal to `parts` above), as S3 combines them.
        let size = object.len() as u64;
        let version = Self::version(&mut state, object);
        let completed = CompletedObject {
            version_id: Some(version.version_id.clone()),
            checksum: Some(checksum),
            size: Some(size),
        };
        state.objects.entry(key.into()).or_default().push(version);
        state.completed.insert(key.into(), completed.clone());
        Ok(completed)
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, CloudError> {
        let state = self.state();
        let mut pending: Vec<PendingUpload> = state
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .map(|(id, u)| PendingUpload {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated: None,
                parts: u.parts.len() as u32,
                bytes: u.parts.values().map(|(p, _)| p.size).sum(),
            })
            .collect();
        pending.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(pending)
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Called<()>, CloudError> {
        let mut state = self.state();
        match state.uploads.get(upload_id) {
            Some(u) if u.key == key => {
                state.uploads.remove(upload_id);
                Ok(Called::new((), Some("req-memory".into())))
            }
            _ => Err(CloudError::from_code(
                "AbortMultipartUpload",
                "NoSuchUpload",
                format!("no upload {upload_id} of {key}"),
                None,
            )),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<CompletedObject>, CloudError> {
        let state = self.state();
        // The latest version, as HeadObject answers; a checksum only for a completed upload
        // whose object is still the latest (put_new/put_version objects carry none).
        let Some(latest) = state.objects.get(key).and_then(|vs| vs.last()) else {
            return Ok(None);
        };
        let checksum = state
            .completed
            .get(key)
            .filter(|c| c.version_id.as_deref() == Some(latest.version_id.as_str()))
            .and_then(|c| c.checksum.clone());
        Ok(Some(CompletedObject {
            version_id: Some(latest.version_id.clone()),
            checksum,
            size: Some(latest.bytes.len() as u64),
        }))
    }
}

impl EvidenceAudit for MemoryStore {
    async fn bucket_lock(&self) -> Result<Called<BucketLock>, CloudError> {
        Ok(Called::new(
            self.state().lock.clone(),
            Some("req-memory".into()),
        ))
    }

    async fn versions(&self, prefix: &str) -> Result<Vec<Version>, CloudError> {
        let state = self.state();
        let mut versions: Vec<Version> = state
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(key, vs)| {
                vs.iter().map(|v| Version {
                    key: key.clone(),
                    version_id: v.version_id.clone(),
                    delete_marker: false,
                })
            })
            .collect();
        versions.sort_by(|a, b| (&a.key, &a.version_id).cmp(&(&b.key, &b.version_id)));
        Ok(versions)
    }

    async fn lock(&self, key: &str, version_id: &str) -> Result<LockState, CloudError> {
        self.state()
            .objects
            .get(key)
            .and_then(|vs| vs.iter().find(|v| v.version_id == version_id))
            .map(|v| v.lock.clone())
            .ok_or_else(|| {
                err(
                    ErrorKind::NotFound,
                    "HeadObject",
                    "NoSuchVersion",
                    format!("{key} version {version_id}"),
                )
            })
    }
}

/// The URL [`Handoff::presign_part`] gives in memory: `memory:<upload id>:<part>:<key>`.
fn part_url(upload_id: &str, number: u32, key: &str) -> String {
    format!("memory:{upload_id}:{number}:{key}")
}

impl MemoryStore {
    /// What a host does with a part URL: store `bytes` as that part (unit tests of handed-off
    /// uploads). A URL that is not one of this store's part URLs is an error.
    pub async fn put_part_url(&self, url: &str, bytes: Vec<u8>) -> Result<(), CloudError> {
        let bad = || {
            err(
                ErrorKind::Invalid,
                "UploadPart",
                "InvalidURI",
                format!("{url} is not a part URL of this store"),
            )
        };
        let rest = url.strip_prefix("memory:").ok_or_else(bad)?;
        let mut fields = rest.splitn(3, ':');
        let (Some(id), Some(number), Some(key)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let number: u32 = number.parse().map_err(|_| bad())?;
        let algorithm = self
            .state()
            .uploads
            .get(id)
            .map(|u| u.algorithm)
            .ok_or_else(bad)?;
        let mut body = PartBody::with_capacity(1);
        body.push(bytes::Bytes::from(bytes));
        let upload = Upload {
            id: id.to_string(),
            algorithm,
        };
        self.upload_part(key, &upload, number, body)
            .await
            .map(|_| ())
    }
}

impl crate::Transfer for MemoryStore {
    fn transfer_bucket(&self) -> &str {
        BUCKET
    }

    async fn put_transfer(&self, key: &str, bytes: Vec<u8>) -> Result<(), CloudError> {
        self.write(key, &bytes).await;
        let mut state = self.state();
        let version = Self::version(&mut state, bytes);
        state.objects.insert(key.to_string(), vec![version]);
        Ok(())
    }

    async fn presign_transfer(
        &self,
        key: &str,
        _: std::time::Duration,
    ) -> Result<String, CloudError> {
        Ok(format!("memory:get:{key}"))
    }

    async fn delete_transfer(&self, key: &str) -> Result<(), CloudError> {
        self.write(key, &[]).await;
        self.state().objects.remove(key);
        Ok(())
    }
}

impl crate::Handoff for MemoryStore {
    async fn open_handoff(&self, key: &str) -> Result<String, CloudError> {
        Ok(self.open_upload(key).await?.0.id)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        _: std::time::Duration,
    ) -> Result<String, CloudError> {
        Ok(part_url(upload_id, number, key))
    }

    async fn presign_get(&self, key: &str, _: std::time::Duration) -> Result<String, CloudError> {
        Ok(format!("memory:get:{key}"))
    }

    async fn handoff_parts(
        &self,
        _: &str,
        upload_id: &str,
    ) -> Result<Vec<crate::HandoffPart>, CloudError> {
        let state = self.state();
        let upload = state.uploads.get(upload_id).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                "ListParts",
                "NoSuchUpload",
                upload_id.to_string(),
            )
        })?;
        Ok(upload
            .parts
            .values()
            .map(|(p, _)| crate::HandoffPart {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
            })
            .collect())
    }

    async fn complete_handoff(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[crate::HandoffPart],
    ) -> Result<Option<String>, CloudError> {
        let (upload, stored) = {
            let state = self.state();
            let open = state.uploads.get(upload_id).ok_or_else(|| {
                err(
                    ErrorKind::NotFound,
                    "CompleteMultipartUpload",
                    "NoSuchUpload",
                    upload_id.to_string(),
                )
            })?;
            let stored: Vec<StoredPart> = parts
                .iter()
                .filter_map(|p| open.parts.get(&p.number).map(|(s, _)| s.clone()))
                .collect();
            (
                Upload {
                    id: upload_id.to_string(),
                    algorithm: open.algorithm,
                },
                stored,
            )
        };
        Ok(self
            .complete_upload(key, &upload, &stored)
            .await?
            .version_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_new_refuses_an_existing_key_and_put_version_keeps_both() {
        let store = MemoryStore::new();
        store
            .put_new("a", b"1".to_vec(), "text/plain")
            .await
            .expect("first");
        let refused = store
            .put_new("a", b"2".to_vec(), "text/plain")
            .await
            .expect_err("again");
        assert_eq!(refused.kind, ErrorKind::Exists);
        store
            .put_version("a", b"3".to_vec(), "text/plain")
            .await
            .expect("version");
        assert_eq!(store.get("a").await.expect("get"), Some(b"3".to_vec()));
        assert_eq!(store.versions("a").await.expect("versions").len(), 2);
        let v = &store.versions("a").await.expect("versions")[0];
        let lock = store.lock("a", &v.version_id).await.expect("lock");
        assert_eq!(lock.mode.as_deref(), Some("COMPLIANCE"));
    }

    #[tokio::test]
    async fn a_multipart_upload_survives_a_failed_part_and_completes_with_s3s_checksum() {
        for algorithm in [PartAlgorithm::Crc64Nvme, PartAlgorithm::Sha256] {
            let store = MemoryStore::new();
            store.create_uploads_with(algorithm);
            store.fail_part_once(1);
            let key = "x/data/blocks.bin";
            let (upload, parts) = store.open_upload(key).await.expect("open");
            assert_eq!(upload.algorithm, algorithm);
            assert!(parts.is_empty());
            let send = |bytes: &'static [u8]| PartBody::from(bytes.to_vec());
            let failed = store.upload_part(key, &upload, 1, send(b"abc")).await;
            assert_eq!(failed.expect_err("injected").kind, ErrorKind::Transient);
            let part = store
                .upload_part(key, &upload, 1, send(b"abc"))
                .await
                .expect("part");
            assert_eq!(part.checksum, algorithm.checksum(b"abc"));
            // A new default does not change an open upload.
            store.create_uploads_with(PartAlgorithm::default());
            let (again, parts) = store.open_upload(key).await.expect("reopen");
            assert_eq!(
                (&again, parts.as_slice()),
                (&upload, std::slice::from_ref(&part))
            );
            let done = store
                .complete_upload(key, &upload, &parts)
                .await
                .expect("complete");
            assert_eq!(done.checksum, object_checksum(algorithm, &parts).ok());
            assert_eq!(store.head(key).await.expect("head"), Some(done));
            assert_eq!(store.object(key), Some(b"abc".to_vec()));
            assert_eq!(store.open_uploads(), 0);
        }
    }
}
