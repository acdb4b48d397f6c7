//! [`EvidenceStore`] over S3 Object Lock: every object is written with its SHA-256 checked by
//! S3, COMPLIANCE retention until the configured date, an optional legal hold, and
//! `If-None-Match: *` so that nothing already stored is ever overwritten.

use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};
use base64::Engine;
use forensnap_preserve::ports::BucketLock;
use forensnap_preserve::{AwsError, Called, EvidenceStore, Stored};
use sha2::{Digest, Sha256};

use crate::errors::aws_error;

/// The evidence bucket.
#[derive(Debug, Clone)]
pub struct S3Evidence {
    /// S3 client of the forensic account.
    s3: aws_sdk_s3::Client,
    /// Bucket name.
    bucket: String,
    /// Retention of every object, days from upload.
    retention_days: u32,
    /// Legal hold on every object.
    legal_hold: bool,
}

impl S3Evidence {
    /// The evidence bucket `bucket`.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        retention_days: u32,
        legal_hold: bool,
    ) -> Self {
        S3Evidence {
            s3,
            bucket: bucket.to_string(),
            retention_days,
            legal_hold,
        }
    }

    /// Retention date of an object written now.
    pub(crate) fn retain_until(&self) -> DateTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        DateTime::from_secs((now + u64::from(self.retention_days) * 86_400) as i64)
    }

    /// The legal hold every object gets, if configured.
    pub(crate) fn legal_hold_status(&self) -> Option<ObjectLockLegalHoldStatus> {
        self.legal_hold.then_some(ObjectLockLegalHoldStatus::On)
    }

    /// The S3 client.
    pub(crate) fn client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// PutObject under COMPLIANCE retention (and legal hold), its SHA-256 checked by S3; with
    /// `overwrite == false` it carries `If-None-Match: *` and never replaces an existing key.
    pub(crate) async fn put_object_locked(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        overwrite: bool,
    ) -> Result<Called<Stored>, AwsError> {
        let digest = Sha256::digest(&bytes);
        let size = bytes.len() as u64;
        let out = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(self.retain_until())
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

    /// An object's bytes, `None` when the key does not exist.
    pub(crate) async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
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
                return if err.code.as_deref() == Some("NoSuchKey") {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let body = out.body.collect().await.map_err(|e| AwsError {
            operation: "GetObject",
            code: None,
            message: format!("reading the body of {key}: {e}"),
            request_id: None,
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }
}

impl EvidenceStore for S3Evidence {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn lock_state(&self) -> Result<Called<BucketLock>, AwsError> {
        let lock = match self
            .s3
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => {
                let config = out.object_lock_configuration();
                let rule = config
                    .and_then(|c| c.rule())
                    .and_then(|r| r.default_retention());
                BucketLock {
                    enabled: config
                        .and_then(|c| c.object_lock_enabled())
                        .map(|e| e.as_str() == "Enabled")
                        .unwrap_or(false),
                    default_mode: rule.and_then(|r| r.mode()).map(|m| m.as_str().to_string()),
                    default_days: rule.and_then(|r| {
                        r.days()
                            .map(|d| d as u32)
                            .or_else(|| r.years().map(|y| y as u32 * 365))
                    }),
                    versioning: None,
                }
            }
            Err(e) => {
                let err = aws_error("GetObjectLockConfiguration", e);
                if err
                    .code
                    .as_deref()
                    .is_some_and(|c| c.contains("ObjectLockConfiguration"))
                {
                    BucketLock {
                        enabled: false,
                        default_mode: None,
                        default_days: None,
                        versioning: None,
                    }
                } else {
                    return Err(err);
                }
            }
        };
        let versioning = self
            .s3
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| aws_error("GetBucketVersioning", e))?;
        let request_id = versioning.request_id().map(str::to_string);
        Ok(Called::new(
            BucketLock {
                versioning: versioning.status().map(|s| s.as_str().to_string()),
                ..lock
            },
            request_id,
        ))
    }

    async fn put_locked(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Called<Stored>, AwsError> {
        self.put_object_locked(key, bytes, content_type, false)
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
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

    async fn get(&self, key: &str) -> Result<Vec<u8>, AwsError> {
        self.get_object(key).await?.ok_or_else(|| AwsError {
            operation: "GetObject",
            code: Some("NoSuchKey".into()),
            message: format!("{key} does not exist in bucket {}", self.bucket),
            request_id: None,
        })
    }
}
