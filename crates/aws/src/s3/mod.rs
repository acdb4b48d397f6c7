//! The evidence store over S3 Object Lock ([`S3Store`]): every object is written with its
//! SHA-256 checked by S3, COMPLIANCE retention until the configured date and an optional legal
//! hold; a new object carries `If-None-Match: *` so that nothing stored is ever overwritten.
//!
//! * this module -- the bucket, reads, single-request puts;
//! * [`multipart`] -- uploads created with the same Object Lock and `ChecksumAlgorithm=SHA256`,
//!   found again after a crash (ListMultipartUploads + ListParts), parts streamed;
//! * [`audit`] -- the bucket's Object Lock configuration, versions, retention per version;
//! * [`handoff`] -- an upload whose parts a host without credentials sends through presigned
//!   URLs (memory capture);
//! * [`body`] -- the streamed part body.

mod audit;
mod body;
mod handoff;
mod multipart;

use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
use base64::Engine;
use forensnap_store::{Called, CloudError, ErrorKind, EvidenceRead, Stored};
use sha2::{Digest, Sha256};

use crate::errors::aws_error;

/// The evidence bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// S3 client of the forensic account.
    s3: aws_sdk_s3::Client,
    /// Bucket name.
    bucket: String,
    /// Legal hold on every object.
    legal_hold: bool,
}

impl S3Store {
    /// The evidence bucket `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, legal_hold: bool) -> Self {
        S3Store {
            s3,
            bucket: bucket.to_string(),
            legal_hold,
        }
    }

    /// The legal hold every object gets, if configured.
    fn legal_hold_status(&self) -> Option<ObjectLockLegalHoldStatus> {
        self.legal_hold.then_some(ObjectLockLegalHoldStatus::On)
    }

    /// PutObject (the bucket's default COMPLIANCE retention applies; a legal hold only when
    /// configured, which needs `s3:PutObjectLegalHold`), its SHA-256 checked by S3; with
    /// `overwrite == false` it carries `If-None-Match: *` and never replaces an existing key.
    async fn put_object_locked(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        overwrite: bool,
    ) -> Result<Called<Stored>, CloudError> {
        let digest = Sha256::digest(&bytes);
        let size = bytes.len() as u64;
        let out = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .set_object_lock_legal_hold_status(self.legal_hold_status())
            .set_if_none_match((!overwrite).then(|| "*".to_string()))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_error("PutObject", e))?;
        let stored = Stored {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            version_id: out.version_id().map(str::to_string),
            sha256: hex::encode(digest),
            size,
        };
        Ok(Called::new(stored, out.request_id().map(str::to_string)))
    }
}

impl EvidenceRead for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CloudError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = aws_error("GetObject", e);
                return if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let body = out.body.collect().await.map_err(|e| {
            CloudError::new(
                ErrorKind::Transient,
                "GetObject",
                format!("reading the body of {key}: {e}"),
            )
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, CloudError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            // A range of a multipart object only has part-level checksums, which the SDK cannot
            // check; export and verify check every block and the whole object's SHA-256 itself.
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired),
            )
            .send()
            .await
            .map_err(|e| aws_error("GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| {
            CloudError::new(
                ErrorKind::Transient,
                "GetObject",
                format!("{key} bytes {start}+{len}: {e}"),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        Ok(keys)
    }
}
