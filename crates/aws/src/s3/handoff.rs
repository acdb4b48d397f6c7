//! [`Handoff`] over S3: a multipart upload whose parts a host without credentials sends through
//! presigned UploadPart URLs (SigV4 query authentication with the collector's own session, one
//! part each, short-lived), completed from ListParts; and [`Transfer`] over the transfer
//! bucket, where the plan of those URLs waits for the host and is deleted after.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use forensnap_store::{CloudError, ErrorKind, Handoff, HandoffPart, Transfer};

use super::S3Store;
use crate::errors::aws_error;

fn presigning(operation: &'static str, expires: Duration) -> Result<PresigningConfig, CloudError> {
    PresigningConfig::expires_in(expires)
        .map_err(|e| CloudError::new(ErrorKind::Invalid, operation, e.to_string()))
}

fn presign_failed(operation: &'static str) -> impl FnOnce(String) -> CloudError {
    move |why| {
        CloudError::new(
            ErrorKind::Other,
            operation,
            format!("presigning failed: {why}"),
        )
    }
}

impl Handoff for S3Store {
    async fn open_handoff(&self, key: &str) -> Result<String, CloudError> {
        let created = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_object_lock_legal_hold_status(self.legal_hold_status())
            .send()
            .await
            .map_err(|e| aws_error("CreateMultipartUpload", e))?;
        created.upload_id().map(str::to_string).ok_or_else(|| {
            CloudError::new(
                ErrorKind::Other,
                "CreateMultipartUpload",
                "no upload id returned",
            )
        })
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires: Duration,
    ) -> Result<String, CloudError> {
        let request = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(number).unwrap_or(i32::MAX))
            .presigned(presigning("UploadPart", expires)?)
            .await
            .map_err(|e| presign_failed("UploadPart")(e.to_string()))?;
        Ok(request.uri().to_string())
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, CloudError> {
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning("GetObject", expires)?)
            .await
            .map_err(|e| presign_failed("GetObject")(e.to_string()))?;
        Ok(request.uri().to_string())
    }

    async fn handoff_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<HandoffPart>, CloudError> {
        let mut parts: Vec<HandoffPart> = self
            .listed_parts(key, upload_id)
            .await?
            .iter()
            .map(|part| HandoffPart {
                number: part.part_number().unwrap_or_default().max(0) as u32,
                size: part.size().unwrap_or_default().max(0) as u64,
                etag: part.e_tag().unwrap_or_default().to_string(),
            })
            .collect();
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn complete_handoff(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[HandoffPart],
    ) -> Result<Option<String>, CloudError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(i32::try_from(p.number).unwrap_or(i32::MAX))
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let output = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| aws_error("CompleteMultipartUpload", e))?;
        Ok(output.version_id().map(str::to_string))
    }
}

/// An [`S3Store`] of the transfer bucket (no Object Lock): the plan is put with S3's SHA-256
/// check and never kept.
impl Transfer for S3Store {
    fn transfer_bucket(&self) -> &str {
        &self.bucket
    }

    async fn put_transfer(&self, key: &str, bytes: Vec<u8>) -> Result<(), CloudError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| aws_error("PutObject", e))?;
        Ok(())
    }

    async fn presign_transfer(&self, key: &str, expires: Duration) -> Result<String, CloudError> {
        self.presign_get(key, expires).await
    }

    async fn delete_transfer(&self, key: &str) -> Result<(), CloudError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| aws_error("DeleteObject", e))?;
        Ok(())
    }
}
