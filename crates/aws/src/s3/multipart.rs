//! Writing evidence: single puts and multipart uploads under Object Lock.

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use forensnap_store::{
    Called, CloudError, CompletedObject, ErrorKind, EvidenceWrite, PartBody, Stored, StoredPart,
};
use sha2::{Digest, Sha256};

use super::S3Store;
use super::body::part_stream;
use crate::errors::aws_error;

impl S3Store {
    async fn parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, CloudError> {
        let mut parts = Vec::new();
        let mut pages = self
            .s3
            .list_parts()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("ListParts", e))?;
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

impl EvidenceWrite for S3Store {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.put_object_locked(key, bytes, content_type, false)
            .await
    }

    async fn put_version(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Called<Stored>, CloudError> {
        self.put_object_locked(key, bytes, content_type, true).await
    }

    async fn open_upload(&self, key: &str) -> Result<(String, Vec<StoredPart>), CloudError> {
        let open = self
            .s3
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| aws_error("ListMultipartUploads", e))?;
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
        let created = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_object_lock_legal_hold_status(self.legal_hold_status())
            .send()
            .await
            .map_err(|e| aws_error("CreateMultipartUpload", e))?;
        let upload_id = created.upload_id().ok_or_else(|| {
            CloudError::new(
                ErrorKind::Other,
                "CreateMultipartUpload",
                "no upload id returned",
            )
        })?;
        Ok((upload_id.to_string(), Vec::new()))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: PartBody,
    ) -> Result<StoredPart, CloudError> {
        let len = body.len();
        let body = part_stream(body);
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_length(len as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(body)
            // The part's integrity is its SHA-256 trailer, which S3 checks; signing the payload
            // as well would hash every byte once more. (Over HTTPS the SDK signs no payload
            // anyway; this spares plain-HTTP endpoints, such as a local stand-in, that pass.)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| aws_error("UploadPart", e))?;
        let sha256 = match out.checksum_sha256() {
            Some(sum) => sum.to_string(),
            // S3 always echoes the checksum it verified; an empty part has the empty digest.
            None if len == 0 => {
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b""))
            }
            None => {
                return Err(CloudError::new(
                    ErrorKind::Invalid,
                    "UploadPart",
                    format!("part {number}: S3 returned no SHA-256"),
                ));
            }
        };
        Ok(StoredPart {
            number,
            size: len,
            sha256,
            etag: out.e_tag().unwrap_or_default().to_string(),
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, CloudError> {
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
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CompleteMultipartUpload", e))?;
        Ok(CompletedObject {
            version_id: out.version_id().map(str::to_string),
            composite_sha256: out.checksum_sha256().map(str::to_string),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<CompletedObject>, CloudError> {
        let out = match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                // HEAD has no body: a missing key is a bare 404.
                let err = aws_error("HeadObject", e);
                return if err.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        Ok(Some(CompletedObject {
            version_id: out.version_id().map(str::to_string),
            composite_sha256: out.checksum_sha256().map(str::to_string),
        }))
    }
}
