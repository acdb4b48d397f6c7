//! [`EvidenceSink`] over S3 Object Lock: a multipart upload created with COMPLIANCE retention
//! (and legal hold when configured) and `ChecksumAlgorithm=SHA256`, found again after a crash by
//! ListMultipartUploads + ListParts, parts streamed from a channel with an exact length so the
//! SDK sends each part's SHA-256 as a trailer that S3 checks.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
};
use base64::Engine;
use bytes::Bytes;
use forensnap_acquire::sink::{
    CompletedObject, EvidenceReader, EvidenceSink, SinkError, StoredPart,
};
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::S3Evidence;
use crate::errors::aws_error;
use forensnap_preserve::EvidenceStore as _;

/// The evidence bucket as an acquisition sink (same bucket, retention and legal hold rules as
/// [`S3Evidence`], whose locked put and get it uses).
#[derive(Debug, Clone)]
pub struct S3Sink {
    /// The bucket and its Object Lock rules.
    store: S3Evidence,
}

impl S3Sink {
    /// The sink writing into `bucket`.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        retention_days: u32,
        legal_hold: bool,
    ) -> Self {
        S3Sink {
            store: S3Evidence::new(s3, bucket, retention_days, legal_hold),
        }
    }

    async fn parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, SinkError> {
        let mut parts = Vec::new();
        let mut pages = self
            .store
            .client()
            .list_parts()
            .bucket(self.store.bucket())
            .key(key)
            .upload_id(upload_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SinkError(aws_error("ListParts", e).to_string()))?;
            for part in page.parts() {
                parts.push(StoredPart {
                    number: part.part_number().unwrap_or_default().max(0) as u32,
                    size: part.size().unwrap_or_default().max(0) as u64,
                    sha256: part.checksum_sha256().unwrap_or_default().to_string(),
                    etag: part.e_tag().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(parts)
    }
}

/// A part body fed by the acquisition engine, of exactly `remaining` bytes.
struct ChannelBody {
    rx: mpsc::Receiver<Vec<u8>>,
    remaining: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                let len = chunk.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err("part body longer than announced".into())));
                }
                self.remaining -= len;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
            Poll::Ready(None) if self.remaining == 0 => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(format!(
                "part body ended {} bytes early",
                self.remaining
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.rx.is_closed() && self.rx.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl EvidenceReader for S3Sink {
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, SinkError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .store
            .client()
            .get_object()
            .bucket(self.store.bucket())
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            // A range of a multipart object only has part-level checksums, which the SDK cannot
            // check; export checks every block and the whole object's SHA-256 itself.
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired),
            )
            .send()
            .await
            .map_err(|e| SinkError(aws_error("GetObject", e).to_string()))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| SinkError(format!("GetObject {key} bytes {start}+{len}: {e}")))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SinkError> {
        self.store
            .get_object(key)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

impl EvidenceSink for S3Sink {
    async fn open_upload(&self, key: &str) -> Result<(String, Vec<StoredPart>), SinkError> {
        let open = self
            .store
            .client()
            .list_multipart_uploads()
            .bucket(self.store.bucket())
            .prefix(key)
            .send()
            .await
            .map_err(|e| SinkError(aws_error("ListMultipartUploads", e).to_string()))?;
        let existing = open
            .uploads()
            .iter()
            .filter(|u| u.key() == Some(key))
            .filter_map(|u| u.upload_id())
            .next_back()
            .map(str::to_string);
        if let Some(upload_id) = existing {
            let parts = self.parts(key, &upload_id).await?;
            return Ok((upload_id, parts));
        }
        let create = self
            .store
            .client()
            .create_multipart_upload()
            .bucket(self.store.bucket())
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(self.store.retain_until())
            .set_object_lock_legal_hold_status(self.store.legal_hold_status());
        let created = create
            .send()
            .await
            .map_err(|e| SinkError(aws_error("CreateMultipartUpload", e).to_string()))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| SinkError("CreateMultipartUpload: no upload id".into()))?;
        Ok((upload_id.to_string(), Vec::new()))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        len: u64,
        body: mpsc::Receiver<Vec<u8>>,
    ) -> Result<StoredPart, SinkError> {
        let body = ByteStream::from_body_1_x(ChannelBody {
            rx: body,
            remaining: len,
        });
        let out = self
            .store
            .client()
            .upload_part()
            .bucket(self.store.bucket())
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_length(len as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError(aws_error("UploadPart", e).to_string()))?;
        let sha256 = match out.checksum_sha256() {
            Some(sum) => sum.to_string(),
            // S3 always echoes the checksum it verified; an empty part has the empty digest.
            None if len == 0 => {
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b""))
            }
            None => {
                return Err(SinkError(format!(
                    "UploadPart {number}: S3 returned no SHA-256"
                )));
            }
        };
        Ok(StoredPart {
            number,
            size: len,
            sha256,
            etag: out.e_tag().unwrap_or_default().to_string(),
        })
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, SinkError> {
        let completed = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag)
                    .checksum_sha256(&p.sha256)
                    .build()
            })
            .collect();
        let out = self
            .store
            .client()
            .complete_multipart_upload()
            .bucket(self.store.bucket())
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| SinkError(aws_error("CompleteMultipartUpload", e).to_string()))?;
        Ok(CompletedObject {
            version_id: out.version_id().map(str::to_string),
            composite_sha256: out.checksum_sha256().map(str::to_string),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<CompletedObject>, SinkError> {
        let out = match self
            .store
            .client()
            .head_object()
            .bucket(self.store.bucket())
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            // HEAD has no body: a missing key is the modelled NotFound of a bare 404.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
            Err(e) => return Err(SinkError(aws_error("HeadObject", e).to_string())),
        };
        Ok(Some(CompletedObject {
            version_id: out.version_id().map(str::to_string),
            composite_sha256: out.checksum_sha256().map(str::to_string),
        }))
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), SinkError> {
        self.store
            .client()
            .abort_multipart_upload()
            .bucket(self.store.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| SinkError(aws_error("AbortMultipartUpload", e).to_string()))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), SinkError> {
        // Checkpoints are rewritten when a part is redone: a new version, the old one stays locked.
        self.store
            .put_object_locked(key, bytes, "application/json", true)
            .await
            .map(|_| ())
            .map_err(|e| SinkError(e.to_string()))
    }
}

impl forensnap_verify::CaseFiles for S3Sink {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        self.store
            .list(prefix)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }

    async fn versions(&self, prefix: &str) -> Result<Vec<forensnap_verify::Version>, SinkError> {
        let mut versions = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .store
                .client()
                .list_object_versions()
                .bucket(self.store.bucket())
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| SinkError(aws_error("ListObjectVersions", e).to_string()))?;
            let version =
                |key: Option<&str>, id: Option<&str>, delete_marker| forensnap_verify::Version {
                    key: key.unwrap_or_default().to_string(),
                    version_id: id.unwrap_or("null").to_string(),
                    delete_marker,
                };
            versions.extend(
                page.versions()
                    .iter()
                    .map(|v| version(v.key(), v.version_id(), false)),
            );
            versions.extend(
                page.delete_markers()
                    .iter()
                    .map(|d| version(d.key(), d.version_id(), true)),
            );
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        versions.sort_by(|a, b| (&a.key, &a.version_id).cmp(&(&b.key, &b.version_id)));
        Ok(versions)
    }

    async fn lock(
        &self,
        key: &str,
        version_id: &str,
    ) -> Result<forensnap_verify::LockState, SinkError> {
        let out = self
            .store
            .client()
            .head_object()
            .bucket(self.store.bucket())
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| SinkError(aws_error("HeadObject", e).to_string()))?;
        Ok(forensnap_verify::LockState {
            mode: out.object_lock_mode().map(|m| m.as_str().to_string()),
            retain_until: out.object_lock_retain_until_date().map(|d| d.secs()),
            legal_hold: out
                .object_lock_legal_hold_status()
                .is_some_and(|s| s.as_str() == "ON"),
            last_modified: out.last_modified().map(|d| d.secs()),
        })
    }
}
