//! Multipart uploads: CreateMultipartUpload (checksum algorithm and type, Object Lock),
//! UploadPart (its SHA-256 or CRC-64/NVME checked from a header or an aws-chunked trailer; bytes
//! kept or only counted), CompleteMultipartUpload (parts, ETags and checksums checked; a SHA256
//! upload gets the composite `base64(sha256(part digests))-N`, a CRC64NVME upload the full-object
//! CRC, combined from the parts' CRCs and lengths, and checked against the one the client may
//! send), AbortMultipartUpload, ListParts, ListMultipartUploads.

use std::time::SystemTime;

use crc_fast::CrcAlgorithm;
use hyper::Response;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use super::model::{Algorithm, ChecksumType, Data, ObjectChecksum, ObjectVersion, Part, Upload};
use super::objects::{check_lock_allowed, precondition_failed};
use super::xml::{Doc, all, iso, text};
use super::{
    Answer, Call, S3, S3Error, Storage, asked_lock, b64, checksum_headers, crc64_b64, err, etag,
    no_bucket, xml_answer,
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
            .map(Algorithm::parse);
        if let Some(algorithm) = &algorithm {
            check_checksum_type(algorithm, call.header("x-amz-checksum-type"))?;
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
                .header("x-amz-checksum-algorithm", algorithm.name())
                .header("x-amz-checksum-type", algorithm.kind().as_str());
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
        if let Some(algorithm) = &algorithm {
            check_part_checksum(algorithm, &received.given, number)?;
        }
        if locked && !received.any_checksum {
            return Err(err(
                400,
                "InvalidRequest",
                "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Part requests with Object Lock parameters",
            ));
        }
        let tag = self.body_etag(&received.received);
        let given = received.given;
        let Received { data, len, .. } = received.received;
        let part = Part {
            size: len,
            given,
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
        let builder = Response::builder().header("etag", tag);
        Ok((checksum_headers(builder, &given), Body::Empty))
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
        let algorithm = upload.algorithm.as_ref();
        let mut chosen: Vec<&Part> = Vec::with_capacity(listed.len());
        for (i, asked) in listed.iter().enumerate() {
            if i > 0 && asked.number <= listed[i - 1].number {
                return Err(err(
                    400,
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
                ));
            }
            let part = upload
                .parts
                .get(&asked.number)
                .ok_or_else(|| invalid_part(asked.number, "not uploaded".into()))?;
            if asked
                .etag
                .as_deref()
                .is_some_and(|e| e.trim_matches('"') != part.etag.trim_matches('"'))
            {
                return Err(invalid_part(
                    asked.number,
                    format!("ETag {:?} is not the part's {}", asked.etag, part.etag),
                ));
            }
            check_listed(asked, part, algorithm)?;
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
            chosen.push(part);
        }
        let checksum = object_checksum(algorithm, &chosen);
        self.check_object_claims(call, algorithm, checksum.as_ref())?;
        let n = listed.len() as u32;
        let tag = multipart_etag(&chosen);
        let size = chosen.iter().map(|p| p.size).sum();
        let data = joined(&chosen);
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
                data,
                size,
                etag: tag.clone(),
                checksum: checksum.clone(),
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
        if let Some(sum) = &checksum {
            doc.el(&sum.element(), &sum.value)
                .el("ChecksumType", sum.kind.as_str());
        }
        let mut builder = Response::builder().header("content-type", "application/xml");
        if version_id != "null" {
            builder = builder.header("x-amz-version-id", version_id);
        }
        Ok((builder, Body::full(doc.end(root))))
    }

    /// Check the whole object's checksum type and CRC-64/NVME a CompleteMultipartUpload may carry
    /// (`x-amz-checksum-type`, `x-amz-checksum-crc64nvme`) against the upload's `algorithm` and the
    /// `checksum` its parts give.
    fn check_object_claims(
        &self,
        call: &Call,
        algorithm: Option<&Algorithm>,
        checksum: Option<&ObjectChecksum>,
    ) -> Result<(), S3Error> {
        let kind = algorithm.map(Algorithm::kind);
        if let Some(asked) = call.header("x-amz-checksum-type")
            && !kind.is_some_and(|k| asked.eq_ignore_ascii_case(k.as_str()))
        {
            return Err(err(
                400,
                "InvalidRequest",
                format!(
                    "The checksum type {asked} does not match the upload's checksum type ({})",
                    kind.map_or("none", ChecksumType::as_str)
                ),
            ));
        }
        let Some(given) = call.header("x-amz-checksum-crc64nvme") else {
            return Ok(());
        };
        let Some(sum) = checksum.filter(|c| c.algorithm == "CRC64NVME") else {
            return Err(err(
                400,
                "InvalidRequest",
                format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: crc64nvme",
                    algorithm
                        .map_or("none", Algorithm::name)
                        .to_ascii_lowercase()
                ),
            ));
        };
        if given != sum.value {
            add(&self.stats.s3_bad_digest, 1);
            return Err(err(
                400,
                "BadDigest",
                format!(
                    "The CRC64NVME you specified did not match the calculated checksum (given {given}, calculated {})",
                    sum.value
                ),
            ));
        }
        Ok(())
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
            doc.el("ChecksumAlgorithm", algorithm.name())
                .el("ChecksumType", algorithm.kind().as_str());
        }
        for (number, part) in page {
            doc.open("Part")
                .el("PartNumber", number)
                .el("LastModified", iso(part.modified))
                .el("ETag", &part.etag)
                .el("Size", part.size)
                .opt("ChecksumSHA256", part.given.sha256.map(|d| b64(&d)))
                .opt("ChecksumCRC64NVME", part.given.crc64nvme.map(crc64_b64))
                .close("Part");
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
                doc.el("ChecksumAlgorithm", algorithm.name())
                    .el("ChecksumType", algorithm.kind().as_str());
            }
            doc.close("Upload");
        }
        xml_answer(doc.end(root))
    }
}

use super::body::Received;
use super::model::Sums;

/// A part as CompleteMultipartUpload lists it.
#[derive(Debug, PartialEq, Eq)]
struct Completed {
    /// Part number.
    number: u32,
    /// ETag given.
    etag: Option<String>,
    /// ChecksumSHA256 given.
    sha256: Option<String>,
    /// ChecksumCRC64NVME given.
    crc64nvme: Option<String>,
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
                crc64nvme: text(part, "ChecksumCRC64NVME"),
            })
        })
        .collect::<Result<Vec<_>, S3Error>>()?;
    if parts.is_empty() {
        return Err(malformed("no Part"));
    }
    Ok(parts)
}

/// Refuse the checksum type asked for a new upload that its algorithm does not support: SHA256
/// is only composite, CRC64NVME only full-object (also when no type is asked).
fn check_checksum_type(algorithm: &Algorithm, asked: Option<&str>) -> Result<(), S3Error> {
    let Some(asked) = asked else {
        return Ok(());
    };
    let refused = match algorithm {
        Algorithm::Sha256 => ChecksumType::FullObject,
        Algorithm::Crc64Nvme => ChecksumType::Composite,
        Algorithm::Other(_) => return Ok(()),
    };
    if asked.eq_ignore_ascii_case(refused.as_str()) {
        return Err(err(
            400,
            "InvalidRequest",
            format!(
                "The {} checksum type cannot be used with the {} checksum algorithm",
                refused.as_str(),
                algorithm.name().to_ascii_lowercase()
            ),
        ));
    }
    Ok(())
}

/// Refuse part `number` of an upload created with `algorithm` (SHA256 or CRC64NVME) when it
/// carries no checksum of that algorithm (`given`).
fn check_part_checksum(algorithm: &Algorithm, given: &Sums, number: u32) -> Result<(), S3Error> {
    let carried = match algorithm {
        Algorithm::Sha256 => given.sha256.is_some(),
        Algorithm::Crc64Nvme => given.crc64nvme.is_some(),
        Algorithm::Other(_) => true,
    };
    if carried {
        return Ok(());
    }
    let name = algorithm.name().to_ascii_lowercase();
    Err(err(
        400,
        "InvalidRequest",
        format!(
            "Checksum Type mismatch occurred, expected checksum Type: {name} (part {number} carries no x-amz-checksum-{name})"
        ),
    ))
}

/// Check the checksums a CompleteMultipartUpload lists for a part against the part's (a SHA256
/// upload must list each part's; a CRC64NVME upload may).
fn check_listed(
    asked: &Completed,
    part: &Part,
    algorithm: Option<&Algorithm>,
) -> Result<(), S3Error> {
    let stored = [
        (
            "ChecksumSHA256",
            &asked.sha256,
            part.given.sha256.map(|d| b64(&d)),
        ),
        (
            "ChecksumCRC64NVME",
            &asked.crc64nvme,
            part.given.crc64nvme.map(crc64_b64),
        ),
    ];
    for (element, listed, stored) in stored {
        if let Some(sum) = listed
            && Some(sum) != stored.as_ref()
        {
            return Err(invalid_part(
                asked.number,
                format!(
                    "{element} {sum} is not the part's {}",
                    stored.as_deref().unwrap_or("(none)")
                ),
            ));
        }
    }
    if asked.sha256.is_none() && algorithm == Some(&Algorithm::Sha256) {
        return Err(err(
            400,
            "InvalidRequest",
            format!(
                "The upload was created using a sha256 checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                asked.number
            ),
        ));
    }
    Ok(())
}

/// `InvalidPart` for part `number`.
fn invalid_part(number: u32, why: String) -> S3Error {
    err(
        400,
        "InvalidPart",
        format!(
            "One or more of the specified parts could not be found or did not match: part {number}: {why}"
        ),
    )
}

/// The checksum a completed upload's object gets from its `parts` (in order): a SHA256 upload's
/// composite, a CRC64NVME upload's full-object CRC; none for another upload (nor if a part lacks
/// the checksum, which UploadPart does not let happen).
fn object_checksum(algorithm: Option<&Algorithm>, parts: &[&Part]) -> Option<ObjectChecksum> {
    let (algorithm, value, kind) = match algorithm? {
        Algorithm::Sha256 => ("SHA256", composite_sha256(parts)?, ChecksumType::Composite),
        Algorithm::Crc64Nvme => (
            "CRC64NVME",
            crc64_b64(full_crc64nvme(parts)?),
            ChecksumType::FullObject,
        ),
        Algorithm::Other(_) => return None,
    };
    Some(ObjectChecksum {
        algorithm,
        value,
        kind,
    })
}

/// `base64(sha256(part digests))-N`.
fn composite_sha256(parts: &[&Part]) -> Option<String> {
    let mut digests = Vec::with_capacity(parts.len() * 32);
    for part in parts {
        digests.extend_from_slice(&part.given.sha256?);
    }
    Some(format!(
        "{}-{}",
        b64(&Sha256::digest(&digests)),
        parts.len()
    ))
}

/// The CRC-64/NVME of the parts' bytes end to end, combined from each part's CRC and length
/// (starting from the empty string's, 0): no bytes needed, so count mode has it too.
fn full_crc64nvme(parts: &[&Part]) -> Option<u64> {
    parts.iter().try_fold(0, |so_far, part| {
        Some(crc_fast::checksum_combine(
            CrcAlgorithm::Crc64Nvme,
            so_far,
            part.given.crc64nvme?,
            part.size,
        ))
    })
}

/// A multipart object's quoted ETag (`...-N`), from its parts' ETags (no bytes hashed).
fn multipart_etag(parts: &[&Part]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.etag.as_bytes());
    }
    etag(&hasher.finalize(), Some(parts.len() as u32))
}

/// The parts' bytes end to end, or [`Data::Counted`] when any was only counted.
fn joined(parts: &[&Part]) -> Data {
    let mut chunks = Vec::new();
    for part in parts {
        match &part.data {
            Data::Kept(bytes) => chunks.extend(bytes.iter().cloned()),
            Data::Counted => return Data::Counted,
        }
    }
    Data::Kept(chunks)
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
                sha256: Some("abc=".into()),
                crc64nvme: None,
            }]
        );
        assert!(parse_completed("<CompleteMultipartUpload/>").is_err());
        let parts = parse_completed(
            r#"<CompleteMultipartUpload><Part><ChecksumCRC64NVME>rosUhgp5mIg=</ChecksumCRC64NVME><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>"#,
        )
        .expect("parsed");
        assert_eq!(parts[0].crc64nvme.as_deref(), Some("rosUhgp5mIg="));
        assert_eq!(parts[0].sha256, None);
    }

    fn part(data: &[u8]) -> Part {
        Part {
            size: data.len() as u64,
            given: Sums {
                sha256: Some(Sha256::digest(data).into()),
                crc64nvme: Some(crc_fast::checksum(CrcAlgorithm::Crc64Nvme, data)),
            },
            etag: etag(data, None),
            data: Data::Counted,
            modified: SystemTime::now(),
        }
    }

    #[test]
    fn the_full_object_crc_is_combined_from_the_parts() {
        // CRC-64/NVME's check value, and its base64 as S3 writes it.
        assert_eq!(crc64_b64(0xAE8B_1486_0A79_9888), "rosUhgp5mIg=");
        let pieces: [&[u8]; 4] = [b"1234", b"", b"5", b"6789"];
        let parts: Vec<Part> = pieces.iter().map(|p| part(p)).collect();
        let refs: Vec<&Part> = parts.iter().collect();
        assert_eq!(full_crc64nvme(&refs), Some(0xAE8B_1486_0A79_9888));
        assert_eq!(full_crc64nvme(&refs[..1]), parts[0].given.crc64nvme);
        let sum = object_checksum(Some(&Algorithm::Crc64Nvme), &refs).expect("checksum");
        assert_eq!(sum.value, "rosUhgp5mIg=");
        assert_eq!(sum.kind, ChecksumType::FullObject);
        assert_eq!(sum.element(), "ChecksumCRC64NVME");
        let mut without = part(b"x");
        without.given.crc64nvme = None;
        assert_eq!(full_crc64nvme(&[&parts[0], &without]), None);
    }

    #[test]
    fn the_composite_sha256_is_still_the_hash_of_the_part_digests() {
        let parts = [part(b"one"), part(b"two")];
        let refs: Vec<&Part> = parts.iter().collect();
        let digests = [Sha256::digest(b"one"), Sha256::digest(b"two")].concat();
        let sum = object_checksum(Some(&Algorithm::Sha256), &refs).expect("checksum");
        assert_eq!(sum.value, format!("{}-2", b64(&Sha256::digest(digests))));
        assert_eq!(sum.kind, ChecksumType::Composite);
        assert_eq!(sum.header(), "x-amz-checksum-sha256");
        assert!(object_checksum(Some(&Algorithm::parse("crc32")), &refs).is_none());
        assert!(object_checksum(None, &refs).is_none());
    }

    #[test]
    fn algorithms_take_only_their_checksum_type() {
        let crc = Algorithm::parse("crc64nvme");
        assert_eq!(crc, Algorithm::Crc64Nvme);
        assert_eq!(crc.kind(), ChecksumType::FullObject);
        assert!(check_checksum_type(&crc, None).is_ok());
        assert!(check_checksum_type(&crc, Some("FULL_OBJECT")).is_ok());
        assert!(check_checksum_type(&crc, Some("COMPOSITE")).is_err());
        assert!(check_checksum_type(&Algorithm::Sha256, Some("full_object")).is_err());
        assert!(check_checksum_type(&Algorithm::Sha256, Some("COMPOSITE")).is_ok());
        let given = Sums {
            sha256: Some([0; 32]),
            crc64nvme: None,
        };
        assert!(check_part_checksum(&Algorithm::Sha256, &given, 1).is_ok());
        assert!(check_part_checksum(&Algorithm::Crc64Nvme, &given, 1).is_err());
    }
}
