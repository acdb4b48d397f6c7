//! [`Handoff`] over S3: a multipart upload whose parts a host without credentials sends through
//! presigned UploadPart URLs (SigV4 query authentication with the collector's own session, one
//! part each, short-lived), completed from ListParts.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use forensnap_store::{CloudError, ErrorKind, Handoff, HandoffPart};

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
