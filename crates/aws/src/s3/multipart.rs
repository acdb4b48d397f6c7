//! Writing evidence: single puts and multipart uploads under Object Lock.

use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use forensnap_store::{
    Called, CloudError, CompletedObject, ErrorKind, EvidenceWrite, ObjectChecksum, PartAlgorithm,
    PartBody, PartChecksum, PendingUpload, Stored, StoredPart, Upload, object_checksum,
};

use super::S3Store;
use super::body::part_stream;
use crate::errors::aws_error;

impl S3Store {
    /// Every part `upload_id` of `key` holds, as ListParts gives them (all pages).
    pub(super) async fn listed_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<aws_sdk_s3::types::Part>, CloudError> {
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
            parts.extend(page.parts().iter().cloned());
        }
        Ok(parts)
    }

    async fn parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, CloudError> {
        let mut parts = Vec::new();
        for part in &self.listed_parts(key, upload_id).await? {
            let number = part.part_number().unwrap_or_default().max(0) as u32;
            let checksum = match (part.checksum_crc64_nvme(), part.checksum_sha256()) {
                (Some(crc), _) => PartChecksum::Crc64nvme(crc.into()),
                (None, Some(sha)) => PartChecksum::Sha256(sha.into()),
                (None, None) => {
                    return Err(CloudError::new(
                        ErrorKind::Invalid,
                        "ListParts",
                        format!(
                            "part {number} of upload {upload_id} of {key} has neither a CRC64NVME nor a SHA-256 checksum"
                        ),
                    ));
                }
            };
            parts.push(StoredPart {
                number,
                size: part.size().unwrap_or_default().max(0) as u64,
                checksum,
                etag: part.e_tag().unwrap_or_default().to_string(),
            });
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

    async fn open_upload(&self, key: &str) -> Result<(Upload, Vec<StoredPart>), CloudError> {
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
            .filter_map(|u| Some((u.upload_id()?, u.checksum_algorithm())))
            .next_back();
        if let Some((upload_id, algorithm)) = existing {
            let parts = self.parts(key, upload_id).await?;
            // S3 names the upload's algorithm; its parts name it too (an upload listed without
            // one, by an older S3 API, is told by its parts).
            let algorithm = match algorithm {
                Some(a) => PartAlgorithm::from_name(a.as_str()).ok_or_else(|| {
                    CloudError::new(
                        ErrorKind::Invalid,
                        "ListMultipartUploads",
                        format!(
                            "the open upload {upload_id} of {key} checks its parts with {a}, which forensnap does not use: abort it (aws s3api abort-multipart-upload) and collect again"
                        ),
                    )
                })?,
                None => parts
                    .first()
                    .map(|p| p.checksum.algorithm())
                    .unwrap_or(PartAlgorithm::Sha256),
            };
            let upload = Upload {
                id: upload_id.to_string(),
                algorithm,
            };
            return Ok((upload, parts));
        }
        let created = self
            .s3
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
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
        Ok((
            Upload {
                id: upload_id.to_string(),
                algorithm: PartAlgorithm::Crc64Nvme,
            },
            Vec::new(),
        ))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &Upload,
        number: u32,
        body: PartBody,
    ) -> Result<StoredPart, CloudError> {
        let len = body.len();
        // The part's checksum is computed here, from the bytes held, and sent as a header: the
        // SDK then streams the body as it is. (Left to the SDK, the checksum goes in an
        // aws-chunked trailer, and over plain HTTP the SDK signs every chunk with SHA-256: one
        // more hash pass of every byte.) CRC-64/NVME takes well under a millisecond per 16 MiB
        // part; SHA-256 (uploads opened before CRC-64/NVME) goes to the blocking pool.
        let checksum = match upload.algorithm {
            PartAlgorithm::Crc64Nvme => body.checksum(upload.algorithm),
            PartAlgorithm::Sha256 => {
                let held = body.clone();
                tokio::task::spawn_blocking(move || held.checksum(PartAlgorithm::Sha256))
                    .await
                    .map_err(|e| {
                        CloudError::new(
                            ErrorKind::Other,
                            "UploadPart",
                            format!("part {number} of {key}: hashing the part failed: {e}"),
                        )
                    })?
            }
        };
        let request = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.id)
            .part_number(number as i32)
            .content_length(len as i64)
            .body(part_stream(body));
        let request = match &checksum {
            PartChecksum::Crc64nvme(c) => request.checksum_crc64_nvme(c),
            PartChecksum::Sha256(c) => request.checksum_sha256(c),
        };
        let out = request
            // The part's integrity is its checksum header, which S3 checks; signing the payload
            // as well would hash every byte once more.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| aws_error("UploadPart", e))?;
        let echoed = match upload.algorithm {
            PartAlgorithm::Crc64Nvme => out
                .checksum_crc64_nvme()
                .map(|c| PartChecksum::Crc64nvme(c.into())),
            PartAlgorithm::Sha256 => out
                .checksum_sha256()
                .map(|c| PartChecksum::Sha256(c.into())),
        };
        // S3 checked the checksum sent and echoes it; an echo of another value is not the part
        // that was sent.
        if let Some(echoed) = echoed
            && echoed != checksum
        {
            return Err(CloudError::new(
                ErrorKind::Invalid,
                "UploadPart",
                format!("part {number} of {key}: sent with {checksum}, S3 reports {echoed}"),
            ));
        }
        Ok(StoredPart {
            number,
            size: len,
            checksum,
            etag: out.e_tag().unwrap_or_default().to_string(),
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload: &Upload,
        parts: &[StoredPart],
    ) -> Result<CompletedObject, CloudError> {
        // The whole object's checksum, from the parts': S3 checks it before it completes.
        let expected = object_checksum(upload.algorithm, parts)
            .map_err(|why| CloudError::new(ErrorKind::Invalid, "CompleteMultipartUpload", why))?;
        let completed = parts
            .iter()
            .map(|p| {
                let part = CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag);
                match &p.checksum {
                    PartChecksum::Crc64nvme(c) => part.checksum_crc64_nvme(c),
                    PartChecksum::Sha256(c) => part.checksum_sha256(c),
                }
                .build()
            })
            .collect();
        let request = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            );
        let request = match &expected {
            ObjectChecksum::Crc64Nvme(c) => request
                .checksum_crc64_nvme(c)
                .checksum_type(ChecksumType::FullObject),
            ObjectChecksum::CompositeSha256(_) => request,
        };
        let out = request
            .send()
            .await
            .map_err(|e| aws_error("CompleteMultipartUpload", e))?;
        Ok(CompletedObject {
            version_id: out.version_id().map(str::to_string),
            checksum: reported(out.checksum_crc64_nvme(), out.checksum_sha256()),
            size: None,
        })
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, CloudError> {
        let mut pending = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .s3
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| aws_error("ListMultipartUploads", e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let parts = self.parts(key, id).await?;
                pending.push(PendingUpload {
                    key: key.to_string(),
                    upload_id: id.to_string(),
                    initiated: upload.initiated().map(|t| t.to_string()),
                    parts: parts.len() as u32,
                    bytes: parts.iter().map(|p| p.size).sum(),
                });
            }
            if page.is_truncated() != Some(true) {
                return Ok(pending);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(pending);
            }
        }
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<Called<()>, CloudError> {
        let out = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| aws_error("AbortMultipartUpload", e))?;
        Ok(Called::new((), out.request_id().map(str::to_string)))
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
            checksum: reported(out.checksum_crc64_nvme(), out.checksum_sha256()),
            size: out.content_length().and_then(|n| u64::try_from(n).ok()),
        }))
    }
}

/// The object checksum S3 reported: a whole-object CRC-64/NVME, or a composite SHA-256 (`-N`).
/// A SHA-256 without `-N` is the whole object's, which no multipart upload of ours makes: it is
/// reported as given and will not match the parts.
fn reported(crc64nvme: Option<&str>, sha256: Option<&str>) -> Option<ObjectChecksum> {
    match (crc64nvme, sha256) {
        (Some(crc), _) => Some(ObjectChecksum::Crc64Nvme(crc.into())),
        (None, Some(sha)) => Some(ObjectChecksum::CompositeSha256(sha.into())),
        (None, None) => None,
    }
}
