//! An in-memory evidence sink for tests: multipart uploads that survive a failed run (like S3's),
//! with injectable part failures. `keep_data = false` hashes and drops part bytes, so a memory
//! test measures the engine, not the store.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::sink::{CompletedObject, EvidenceReader, EvidenceSink, SinkError, StoredPart};

#[derive(Default)]
struct Upload {
    key: String,
    parts: BTreeMap<u32, (StoredPart, Vec<u8>)>,
}

/// Objects and open uploads in memory.
#[derive(Default)]
pub struct MemorySink {
    uploads: Mutex<BTreeMap<String, Upload>>,
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Multipart objects as completed (what HeadObject reports).
    completed: Mutex<BTreeMap<String, CompletedObject>>,
    next: Mutex<u32>,
    /// Part numbers of `blocks.bin` uploads that fail once each.
    fail_parts: Mutex<Vec<u32>>,
    /// Drop data after hashing (memory tests).
    pub discard_data: bool,
}

impl MemorySink {
    /// A sink that hashes and drops part bytes (for memory measurements).
    pub fn discarding() -> Self {
        MemorySink {
            discard_data: true,
            ..MemorySink::default()
        }
    }

    /// The next upload of data part `number` fails.
    pub fn fail_part_once(&self, number: u32) {
        self.fail_parts.lock().expect("lock").push(number);
    }
    /// A completed object's bytes.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().expect("lock").get(key).cloned()
    }
    /// Remove an object (a test that simulates a crash before a later write).
    pub fn remove(&self, key: &str) {
        self.objects.lock().expect("lock").remove(key);
    }
    /// Replace an object's bytes (a test that tampers with stored evidence).
    pub fn replace(&self, key: &str, bytes: Vec<u8>) {
        self.objects.lock().expect("lock").insert(key.into(), bytes);
    }
    /// Keys of completed and small objects under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.objects
            .lock()
            .expect("lock")
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
    /// Uploads still open.
    pub fn open_uploads(&self) -> usize {
        self.uploads.lock().expect("lock").len()
    }
}

impl EvidenceReader for MemorySink {
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        let objects = self.objects.lock().expect("lock");
        let object = objects
            .get(key)
            .ok_or_else(|| SinkError(format!("NoSuchKey {key}")))?;
        let start = (start as usize).min(object.len());
        let end = start.saturating_add(len as usize).min(object.len());
        Ok(object[start..end].to_vec())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SinkError> {
        Ok(self.objects.lock().expect("lock").get(key).cloned())
    }
}

impl EvidenceSink for MemorySink {
    async fn open_upload(&self, key: &str) -> Result<(String, Vec<StoredPart>), SinkError> {
        let mut uploads = self.uploads.lock().expect("lock");
        if let Some((id, upload)) = uploads.iter().find(|(_, u)| u.key == key) {
            return Ok((
                id.clone(),
                upload.parts.values().map(|(p, _)| p.clone()).collect(),
            ));
        }
        let mut next = self.next.lock().expect("lock");
        *next += 1;
        let id = format!("upload-{next}");
        uploads.insert(
            id.clone(),
            Upload {
                key: key.into(),
                parts: BTreeMap::new(),
            },
        );
        Ok((id, Vec::new()))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        len: u64,
        mut body: mpsc::Receiver<Vec<u8>>,
    ) -> Result<StoredPart, SinkError> {
        let fail = {
            let mut fails = self.fail_parts.lock().expect("lock");
            let hit = key.ends_with("blocks.bin") && fails.contains(&number);
            fails.retain(|n| !(hit && *n == number));
            hit
        };
        let mut hash = Sha256::new();
        let mut data = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = body.recv().await {
            if fail {
                return Err(SinkError(format!(
                    "UploadPart {number}: InternalError (injected)"
                )));
            }
            hash.update(&chunk);
            size += chunk.len() as u64;
            if !self.discard_data {
                data.extend_from_slice(&chunk);
            }
        }
        if fail {
            return Err(SinkError(format!(
                "UploadPart {number}: InternalError (injected)"
            )));
        }
        if size != len {
            return Err(SinkError(format!(
                "part {number}: {size} bytes received, {len} announced"
            )));
        }
        let part = StoredPart {
            number,
            size,
            sha256: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                hash.finalize(),
            ),
            etag: format!("\"etag-{number}\""),
        };
        let mut uploads = self.uploads.lock().expect("lock");
        let upload = uploads
            .get_mut(upload_id)
            .ok_or_else(|| SinkError("NoSuchUpload".into()))?;
        upload.parts.insert(number, (part.clone(), data));
        Ok(part)
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, SinkError> {
        let upload = self
            .uploads
            .lock()
            .expect("lock")
            .remove(upload_id)
            .ok_or_else(|| SinkError("NoSuchUpload".into()))?;
        let mut object = Vec::new();
        for part in parts {
            let (stored, data) = upload
                .parts
                .get(&part.number)
                .ok_or_else(|| SinkError(format!("InvalidPart {}", part.number)))?;
            if stored != part {
                return Err(SinkError(format!(
                    "InvalidPart {}: checksum differs",
                    part.number
                )));
            }
            object.extend_from_slice(data);
        }
        // The stored parts' own digests (checked equal to `parts` above), as S3 combines them.
        let composite = crate::engine::composite_sha256(parts);
        self.objects
            .lock()
            .expect("lock")
            .insert(key.into(), object);
        let completed = CompletedObject {
            version_id: Some("v1".into()),
            composite_sha256: Some(composite),
        };
        self.completed
            .lock()
            .expect("lock")
            .insert(key.into(), completed.clone());
        Ok(completed)
    }

    async fn head(&self, key: &str) -> Result<Option<CompletedObject>, SinkError> {
        Ok(self.completed.lock().expect("lock").get(key).cloned())
    }

    async fn abort(&self, _: &str, upload_id: &str) -> Result<(), SinkError> {
        self.uploads.lock().expect("lock").remove(upload_id);
        Ok(())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        self.objects.lock().expect("lock").insert(key.into(), bytes);
        Ok(())
    }
}
