//! Multipart uploads: CreateMultipartUpload (checksum algorithm, Object Lock), UploadPart (its
//! SHA-256 checked from a header or an aws-chunked trailer; bytes kept or only counted),
//! CompleteMultipartUpload (parts, ETags and checksums checked; the composite SHA-256
//! `base64(sha256(part digests))-N`), AbortMultipartUpload, ListParts, ListMultipartUploads.

use std::time::SystemTime;

use hyper::Response;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::model::{Data, ObjectVersion, Part, Upload};
use super::objects::{check_lock_allowed, precondition_failed};
use super::xml::{Doc, all, iso, text};
use super::{
    Answer, Call, S3, S3Error, Storage, asked_lock, b64, err, etag, no_bucket, xml_answer,
};
use crate::http::Body;
use crate::stats::add;

/// Part numbers S3 accepts.
const PART_NUMBERS: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Most parts or uploads in one listing page (S3's cap).
const MAX_LISTED: usize = 1000;

impl S3 {
    /// CreateMultipartUpload.
    pub(super) fn create_upload(&self, call: &Call) -> Answer {
        let asked = asked_lock(call)?;
        let algorithm = call
            .header("x-amz-checksum-algorithm")
            .map(str::to_ascii_uppercase);
        if algorithm.as_deref() == Some("SHA256")
            && call
                .header("x-amz-checksum-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("FULL_OBJECT"))
        {
            return Err(err(
                400,
                "InvalidRequest",
                "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm",
            ));
        }
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        check_lock_allowed(bucket.lock_enabled, &asked)?;
        let upload_id = self.next_id("u");
        let seq = self.seq.load(std::sync::atomic::Ordering::Relaxed);
        bucket.uploads.insert(
            upload_id.clone(),
            Upload {
                key: call.key.clone(),
                seq,
                initiated: SystemTime::now(),
                algorithm: algorithm.clone(),
                content_type: call
                    .header("content-type")
                    .unwrap_or("binary/octet-stream")
                    .to_string(),
                lock: asked,
                parts: Default::default(),
            },
        );
        let root = "InitiateMultipartUploadResult";
        let mut doc = Doc::new(root);
        doc.el("Bucket", &call.bucket)
            .el("Key", &call.key)
            .el("UploadId", &upload_id);
        let mut builder = Response::builder().header("content-type", "application/xml");
        if let Some(algorithm) = algorithm {
            builder = builder
                .header("x-amz-checksum-algorithm", algorithm)
                .header("x-amz-checksum-type", "COMPOSITE");
        }
        Ok((builder, Body::full(doc.end(root))))
    }

    /// UploadPart.
    pub(super) async fn upload_part(&self, call: &Call, body: Incoming) -> Answer {
        let number = call
            .param("partNumber")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| PART_NUMBERS.contains(n))
            .ok_or_else(|| {
                err(
                    400,
                    "InvalidArgument",
                    "Part number must be an integer between 1 and 10000, inclusive",
                )
            })?;
        let upload_id = call.param("uploadId").unwrap_or_default().to_string();
        let (algorithm, locked) = {
            let buckets = self.lock();
            let bucket = buckets
                .get(&call.bucket)
                .ok_or_else(|| no_bucket(&call.bucket))?;
            let upload = find_upload(bucket, &upload_id, &call.key)?;
            let lock = bucket.lock_for(upload.lock.clone(), SystemTime::now());
            (
                upload.algorithm.clone(),
                lock.mode.is_some() || lock.legal_hold,
            )
        };
        let received = self
            .receive(call, body, self.config.storage == Storage::Keep)
            .await?;
        if algorithm.as_deref() == Some("SHA256") && !received.sha256_given {
            return Err(err(
                400,
                "InvalidRequest",
                format!(
                    "Checksum Type mismatch occurred, expected checksum Type: sha256 (part {number} carries no x-amz-checksum-sha256)"
                ),
            ));
        }
        if locked && !received.any_checksum {
            return Err(err(
                400,
                "InvalidRequest",
                "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Part requests with Object Lock parameters",
            ));
        }
        let Received {
            data, len, sha256, ..
        } = received.received;
        let tag = etag(&sha256, None);
        let part = Part {
            size: len,
            sha256,
            checksummed: received.sha256_given,
            etag: tag.clone(),
            data: match data {
                Some(bytes) => Data::Kept(vec![bytes]),
                None => Data::Counted,
            },
            modified: SystemTime::now(),
        };
        {
            let mut buckets = self.lock();
            let bucket = buckets
                .get_mut(&call.bucket)
                .ok_or_else(|| no_bucket(&call.bucket))?;
            // The upload may have been completed or aborted while the part streamed in.
            let upload = bucket
                .uploads
                .get_mut(&upload_id)
                .filter(|u| u.key == call.key)
                .ok_or_else(|| no_upload(&upload_id))?;
            upload.parts.insert(number, part);
        }
        add(&self.stats.s3_parts, 1);
        add(&self.stats.s3_bytes_in, len);
        let mut builder = Response::builder().header("etag", tag);
        if received.sha256_given {
            builder = builder.header("x-amz-checksum-sha256", b64(&sha256));
        }
        Ok((builder, Body::Empty))
    }

    /// CompleteMultipartUpload.
    pub(super) async fn complete_upload(&self, call: &Call, body: Incoming) -> Answer {
        let upload_id = call.param("uploadId").unwrap_or_default().to_string();
        let document = self.read_xml(body).await?;
        let listed = parse_completed(&document)?;
        let if_none_match = call
            .header("if-none-match")
            .is_some_and(|v| v.trim() == "*");
        let now = SystemTime::now();
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let upload = find_upload(bucket, &upload_id, &call.key)?;
        if if_none_match && bucket.exists(&call.key) {
            return Err(precondition_failed());
        }
        let sha256_upload = upload.algorithm.as_deref() == Some("SHA256");
        let mut digests = Vec::with_capacity(listed.len() * 32);
        let mut chunks = Vec::new();
        let mut counted = false;
        let mut size = 0u64;
        for (i, asked) in listed.iter().enumerate() {
            if i > 0 && asked.number <= listed[i - 1].number {
                return Err(err(
                    400,
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
                ));
            }
            let invalid = |why: String| {
                err(
                    400,
                    "InvalidPart",
                    format!(
                        "One or more of the specified parts could not be found or did not match: part {}: {why}",
                        asked.number
                    ),
                )
            };
            let part = upload
                .parts
                .get(&asked.number)
                .ok_or_else(|| invalid("not uploaded".into()))?;
            if asked
                .etag
                .as_deref()
                .is_some_and(|e| e.trim_matches('"') != part.etag.trim_matches('"'))
            {
                return Err(invalid(format!(
                    "ETag {:?} is not the part's {}",
                    asked.etag, part.etag
                )));
            }
            match &asked.sha256 {
                Some(sum) if *sum != b64(&part.sha256) => {
                    return Err(invalid(format!(
                        "ChecksumSHA256 {sum} is not the part's {}",
                        b64(&part.sha256)
                    )));
                }
                None if sha256_upload => {
                    return Err(err(
                        400,
                        "InvalidRequest",
                        format!(
                            "The upload was created using a sha256 checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                            asked.number
                        ),
                    ));
                }
                _ => {}
            }
            if i + 1 < listed.len() && part.size < self.config.min_part_size {
                return Err(err(
                    400,
                    "EntityTooSmall",
                    format!(
                        "Your proposed upload is smaller than the minimum allowed object size: part {} has {} bytes, the minimum is {}",
                        asked.number, part.size, self.config.min_part_size
                    ),
                ));
            }
            digests.extend_from_slice(&part.sha256);
            size += part.size;
            match &part.data {
                Data::Kept(bytes) => chunks.extend(bytes.iter().cloned()),
                Data::Counted => counted = true,
            }
        }
        let n = listed.len() as u32;
        let digest = Sha256::digest(&digests);
        let composite = sha256_upload.then(|| format!("{}-{n}", b64(&digest)));
        let tag = etag(&digest, Some(n));
        let content_type = upload.content_type.clone();
        let asked_lock = upload.lock.clone();
        bucket.uploads.remove(&upload_id);
        let lock = bucket.lock_for(asked_lock, now);
        let version_id = if bucket.versioned() {
            self.next_id("v")
        } else {
            "null".to_string()
        };
        bucket.put(
            &call.key,
            ObjectVersion {
                version_id: version_id.clone(),
                delete_marker: false,
                data: if counted {
                    Data::Counted
                } else {
                    Data::Kept(chunks)
                },
                size,
                etag: tag.clone(),
                sha256: composite.clone(),
                parts: Some(n),
                content_type,
                modified: now,
                lock,
            },
        );
        drop(buckets);
        add(&self.stats.s3_completed, 1);
        let root = "CompleteMultipartUploadResult";
        let mut doc = Doc::new(root);
        let host = call.header("host").unwrap_or("127.0.0.1");
        doc.el(
            "Location",
            format!("http://{host}/{}/{}", call.bucket, call.key),
        )
        .el("Bucket", &call.bucket)
        .el("Key", &call.key)
        .el("ETag", &tag);
        if let Some(sum) = &composite {
            doc.el("ChecksumSHA256", sum)
                .el("ChecksumType", "COMPOSITE");
        }
        let mut builder = Response::builder().header("content-type", "application/xml");
        if version_id != "null" {
            builder = builder.header("x-amz-version-id", version_id);
        }
        Ok((builder, Body::full(doc.end(root))))
    }

    /// AbortMultipartUpload.
    pub(super) fn abort_upload(&self, call: &Call) -> Answer {
        let upload_id = call.param("uploadId").unwrap_or_default();
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        find_upload(bucket, upload_id, &call.key)?;
        bucket.uploads.remove(upload_id);
        Ok((Response::builder().status(204), Body::Empty))
    }

    /// ListParts.
    pub(super) fn list_parts(&self, call: &Call) -> Answer {
        let upload_id = call.param("uploadId").unwrap_or_default();
        let marker: u32 = call
            .param("part-number-marker")
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let max = listing_max(call.param("max-parts"))?;
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let upload = find_upload(bucket, upload_id, &call.key)?;
        let mut parts = upload.parts.range(marker + 1..);
        let page: Vec<_> = parts.by_ref().take(max).collect();
        let truncated = parts.next().is_some();
        let root = "ListPartsResult";
        let mut doc = Doc::new(root);
        doc.el("Bucket", &call.bucket)
            .el("Key", &call.key)
            .el("UploadId", upload_id)
            .el("PartNumberMarker", marker)
            .el(
                "NextPartNumberMarker",
                page.last().map_or(marker, |(n, _)| **n),
            )
            .el("MaxParts", max)
            .el("IsTruncated", truncated)
            .el("StorageClass", "STANDARD");
        if let Some(algorithm) = &upload.algorithm {
            doc.el("ChecksumAlgorithm", algorithm)
                .el("ChecksumType", "COMPOSITE");
        }
        for (number, part) in page {
            doc.open("Part")
                .el("PartNumber", number)
                .el("LastModified", iso(part.modified))
                .el("ETag", &part.etag)
                .el("Size", part.size);
            if part.checksummed {
                doc.el("ChecksumSHA256", b64(&part.sha256));
            }
            doc.close("Part");
        }
        xml_answer(doc.end(root))
    }

    /// ListMultipartUploads.
    pub(super) fn list_uploads(&self, call: &Call) -> Answer {
        let prefix = call.param("prefix").unwrap_or_default();
        let key_marker = call.param("key-marker").unwrap_or_default();
        let id_marker = call.param("upload-id-marker").unwrap_or_default();
        let max = listing_max(call.param("max-uploads"))?;
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let mut uploads: Vec<(&String, &Upload)> = bucket
            .uploads
            .iter()
            .filter(|(_, u)| u.key.starts_with(prefix))
            .filter(|(id, u)| {
                key_marker.is_empty()
                    || u.key.as_str() > key_marker
                    || (u.key == key_marker && !id_marker.is_empty() && id.as_str() > id_marker)
            })
            .collect();
        uploads.sort_by(|a, b| (&a.1.key, a.1.seq).cmp(&(&b.1.key, b.1.seq)));
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        let root = "ListMultipartUploadsResult";
        let mut doc = Doc::new(root);
        doc.el("Bucket", &call.bucket)
            .el("KeyMarker", key_marker)
            .el("UploadIdMarker", id_marker)
            .el("Prefix", prefix)
            .el("MaxUploads", max)
            .el("IsTruncated", truncated);
        if truncated && let Some((id, u)) = uploads.last() {
            doc.el("NextKeyMarker", &u.key).el("NextUploadIdMarker", id);
        }
        for (id, u) in uploads {
            doc.open("Upload")
                .el("Key", &u.key)
                .el("UploadId", id)
                .el("StorageClass", "STANDARD")
                .el("Initiated", iso(u.initiated));
            if let Some(algorithm) = &u.algorithm {
                doc.el("ChecksumAlgorithm", algorithm)
                    .el("ChecksumType", "COMPOSITE");
            }
            doc.close("Upload");
        }
        xml_answer(doc.end(root))
    }
}

use super::body::Received;

/// A part as CompleteMultipartUpload lists it.
#[derive(Debug, PartialEq, Eq)]
struct Completed {
    /// Part number.
    number: u32,
    /// ETag given.
    etag: Option<String>,
    /// ChecksumSHA256 given.
    sha256: Option<String>,
}

/// The parts of a CompleteMultipartUpload body.
fn parse_completed(document: &str) -> Result<Vec<Completed>, S3Error> {
    let malformed = |why: &str| {
        err(
            400,
            "MalformedXML",
            format!(
                "The XML you provided was not well-formed or did not validate against our published schema: {why}"
            ),
        )
    };
    let parts = all(document, "Part")
        .into_iter()
        .map(|part| {
            Ok(Completed {
                number: text(part, "PartNumber")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| malformed("a Part without a PartNumber"))?,
                etag: text(part, "ETag"),
                sha256: text(part, "ChecksumSHA256"),
            })
        })
        .collect::<Result<Vec<_>, S3Error>>()?;
    if parts.is_empty() {
        return Err(malformed("no Part"));
    }
    Ok(parts)
}

/// `max-parts` or `max-uploads`, at most [`MAX_LISTED`].
fn listing_max(value: Option<&str>) -> Result<usize, S3Error> {
    match value {
        None => Ok(MAX_LISTED),
        Some(v) => v.parse::<usize>().map(|n| n.min(MAX_LISTED)).map_err(|_| {
            err(
                400,
                "InvalidArgument",
                "the page size must be a non-negative integer",
            )
        }),
    }
}

/// The open upload `id` of `key`.
fn find_upload<'a>(
    bucket: &'a super::model::Bucket,
    id: &str,
    key: &str,
) -> Result<&'a Upload, S3Error> {
    bucket
        .uploads
        .get(id)
        .filter(|u| u.key == key)
        .ok_or_else(|| no_upload(id))
}

/// `NoSuchUpload`.
fn no_upload(id: &str) -> S3Error {
    err(
        404,
        "NoSuchUpload",
        format!(
            "The specified upload {id} does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_complete_request() {
        let parts = parse_completed(
            r#"<CompleteMultipartUpload><Part><ChecksumSHA256>abc=</ChecksumSHA256><ETag>"e"</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"#,
        )
        .expect("parsed");
        assert_eq!(
            parts,
            vec![Completed {
                number: 1,
                etag: Some("\"e\"".into()),
                sha256: Some("abc=".into())
            }]
        );
        assert!(parse_completed("<CompleteMultipartUpload/>").is_err());
    }
}
