//! What an auditor asks of the bucket: its Object Lock configuration and versioning, every
//! version under a prefix (delete markers included), one version's retention and legal hold.

use aws_sdk_s3::operation::RequestId;
use forensnap_store::{BucketLock, Called, CloudError, EvidenceAudit, LockState, Version};

use super::S3Store;
use crate::errors::aws_error;

impl EvidenceAudit for S3Store {
    async fn bucket_lock(&self) -> Result<Called<BucketLock>, CloudError> {
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
                // S3 answers ObjectLockConfigurationNotFoundError for a bucket without it.
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

    async fn versions(&self, prefix: &str) -> Result<Vec<Version>, CloudError> {
        let mut versions = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .s3
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| aws_error("ListObjectVersions", e))?;
            let version = |key: Option<&str>, id: Option<&str>, delete_marker| Version {
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

    async fn lock(&self, key: &str, version_id: &str) -> Result<LockState, CloudError> {
        let out = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| aws_error("HeadObject", e))?;
        Ok(LockState {
            mode: out.object_lock_mode().map(|m| m.as_str().to_string()),
            retain_until: out.object_lock_retain_until_date().map(|d| d.secs()),
            legal_hold: out
                .object_lock_legal_hold_status()
                .is_some_and(|s| s.as_str() == "ON"),
            last_modified: out.last_modified().map(|d| d.secs()),
        })
    }
}
