//! Objects: PutObject (Object Lock headers, `If-None-Match: *`, SHA-256 or CRC-64/NVME checked
//! and kept as the object's full-object checksum), GetObject and
//! HeadObject (ranges, checksum mode, lock state, versions), DeleteObject (delete markers; a
//! locked version stays), ListObjectsV2 (and v1), ListObjectVersions.

use std::time::SystemTime;

use hyper::Response;
use hyper::body::Incoming;

use super::model::{ChecksumType, Data, ObjectChecksum, ObjectVersion, Sums};
use super::xml::{Doc, http_date, iso};
use super::{
    Answer, Call, S3, S3Error, asked_lock, b64, checksum_headers, crc64_b64, err, lock_headers,
    no_bucket, xml_answer,
};
use crate::http::Body;
use crate::stats::add;

/// Most keys in one listing page (S3's cap).
const MAX_KEYS: usize = 1000;

impl S3 {
    /// PutObject.
    pub(super) async fn put_object(&self, call: &Call, body: Incoming) -> Answer {
        let asked = asked_lock(call)?;
        let if_none_match = call
            .header("if-none-match")
            .is_some_and(|v| v.trim() == "*");
        {
            let buckets = self.lock();
            let bucket = buckets
                .get(&call.bucket)
                .ok_or_else(|| no_bucket(&call.bucket))?;
            check_lock_allowed(bucket.lock_enabled, &asked)?;
            if if_none_match && bucket.exists(&call.key) {
                return Err(precondition_failed());
            }
        }
        let upload = self.receive(call, body, true).await?;
        let now = SystemTime::now();
        let received = upload.received;
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let lock = bucket.lock_for(asked, now);
        if (lock.mode.is_some() || lock.legal_hold) && !upload.any_checksum {
            return Err(err(
                400,
                "InvalidRequest",
                "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
            ));
        }
        // Checked again under the lock: two racing puts of one key, one wins.
        if if_none_match && bucket.exists(&call.key) {
            return Err(precondition_failed());
        }
        let version_id = if bucket.versioned() {
            self.next_id("v")
        } else {
            "null".to_string()
        };
        let tag = self.body_etag(&received);
        let checksum = put_checksum(&upload.given);
        add(&self.stats.s3_bytes_in, received.len);
        bucket.put(
            &call.key,
            ObjectVersion {
                version_id: version_id.clone(),
                delete_marker: false,
                data: Data::Kept(received.data.into_iter().collect()),
                size: received.len,
                etag: tag.clone(),
                checksum,
                parts: None,
                content_type: call
                    .header("content-type")
                    .unwrap_or("binary/octet-stream")
                    .to_string(),
                modified: now,
                lock,
            },
        );
        let mut builder = Response::builder().header("etag", tag);
        if version_id != "null" {
            builder = builder.header("x-amz-version-id", version_id);
        }
        Ok((checksum_headers(builder, &upload.given), Body::Empty))
    }

    /// GetObject, or HeadObject when `head`.
    pub(super) fn get_object(&self, call: &Call, head: bool) -> Answer {
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let versions = bucket.objects.get(&call.key);
        let version = match call.param("versionId") {
            Some(id) => versions
                .and_then(|vs| vs.iter().find(|v| v.version_id == id))
                .ok_or_else(|| {
                    err(
                        404,
                        "NoSuchVersion",
                        format!("The specified version {id} does not exist"),
                    )
                })?,
            None => versions
                .and_then(|vs| vs.last())
                .ok_or_else(|| no_key(&call.key))?,
        };
        if version.delete_marker {
            let mut e = if call.param("versionId").is_some() {
                err(
                    405,
                    "MethodNotAllowed",
                    "The specified method is not allowed against a delete marker",
                )
            } else {
                no_key(&call.key)
            };
            e.message.push_str(" (delete marker)");
            return Err(e);
        }
        let range = match call.header("range") {
            Some(text) => parse_range(text, version.size)?,
            None => None,
        };
        let (start, len) = range.unwrap_or((0, version.size));
        let mut builder = Response::builder()
            .status(if range.is_some() { 206 } else { 200 })
            .header("content-length", len)
            .header("content-type", &version.content_type)
            .header("etag", &version.etag)
            .header("last-modified", http_date(version.modified))
            .header("accept-ranges", "bytes");
        if version.version_id != "null" {
            builder = builder.header("x-amz-version-id", &version.version_id);
        }
        if let Some(parts) = version.parts {
            builder = builder.header("x-amz-mp-parts-count", parts);
        }
        if let Some((start, len)) = range {
            builder = builder.header(
                "content-range",
                format!("bytes {start}-{}/{}", start + len.max(1) - 1, version.size),
            );
        }
        let checksum_mode = call
            .header("x-amz-checksum-mode")
            .is_some_and(|v| v.eq_ignore_ascii_case("ENABLED"));
        // A range has no checksum of its own (S3 sends one only for whole objects).
        if checksum_mode
            && range.is_none()
            && let Some(sum) = &version.checksum
        {
            builder = builder
                .header(sum.header(), &sum.value)
                .header("x-amz-checksum-type", sum.kind.as_str());
        }
        builder = lock_headers(builder, &version.lock);
        if head {
            return Ok((builder, Body::Empty));
        }
        let chunks = version.data.range(start, len).ok_or_else(|| {
            err(
                501,
                "NotImplemented",
                format!("{}: the emulator runs in count mode and kept only the length and checksums of this object's parts", call.key),
            )
        })?;
        add(&self.stats.s3_bytes_out, len);
        Ok((builder, Body::Chunks(chunks)))
    }

    /// DeleteObject.
    pub(super) fn delete_object(&self, call: &Call) -> Answer {
        let now = SystemTime::now();
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let builder = Response::builder().status(204);
        if let Some(id) = call.param("versionId") {
            let Some(versions) = bucket.objects.get_mut(&call.key) else {
                return Ok((builder, Body::Empty));
            };
            let Some(at) = versions.iter().position(|v| v.version_id == id) else {
                return Ok((builder, Body::Empty));
            };
            if versions[at].lock.protects(now) {
                return Err(err(
                    403,
                    "AccessDenied",
                    format!(
                        "Access Denied: version {id} of {} is protected by Object Lock",
                        call.key
                    ),
                ));
            }
            let removed = versions.remove(at);
            if versions.is_empty() {
                bucket.objects.remove(&call.key);
            }
            let mut builder = builder.header("x-amz-version-id", id);
            if removed.delete_marker {
                builder = builder.header("x-amz-delete-marker", "true");
            }
            return Ok((builder, Body::Empty));
        }
        if !bucket.versioned() {
            if let Some(versions) = bucket.objects.get_mut(&call.key) {
                if versions
                    .iter()
                    .any(|v| v.version_id == "null" && v.lock.protects(now))
                {
                    return Err(err(
                        403,
                        "AccessDenied",
                        "Access Denied: protected by Object Lock",
                    ));
                }
                versions.retain(|v| v.version_id != "null");
                if versions.is_empty() {
                    bucket.objects.remove(&call.key);
                }
            }
            return Ok((builder, Body::Empty));
        }
        let version_id = self.next_id("v");
        bucket.put(
            &call.key,
            ObjectVersion {
                version_id: version_id.clone(),
                delete_marker: true,
                data: Data::Kept(Vec::new()),
                size: 0,
                etag: String::new(),
                checksum: None,
                parts: None,
                content_type: String::new(),
                modified: now,
                lock: Default::default(),
            },
        );
        Ok((
            builder
                .header("x-amz-version-id", version_id)
                .header("x-amz-delete-marker", "true"),
            Body::Empty,
        ))
    }

    /// ListObjectsV2 (`list-type=2`) or ListObjects (v1).
    pub(super) fn list_objects(&self, call: &Call) -> Answer {
        let v2 = call.param("list-type") == Some("2");
        let prefix = call.param("prefix").unwrap_or_default();
        let delimiter = call.param("delimiter").filter(|d| !d.is_empty());
        let max = max_keys(call)?;
        let after = if v2 {
            call.param("continuation-token")
                .or_else(|| call.param("start-after"))
        } else {
            call.param("marker")
        }
        .unwrap_or_default();
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let mut contents = Vec::new();
        let mut common: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last = String::new();
        let live = bucket
            .objects
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .filter(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, vs)| vs.last().filter(|v| !v.delete_marker).map(|v| (k, v)));
        for (key, version) in live {
            let rolled = delimiter.and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|at| key[..prefix.len() + at + d.len()].to_string())
            });
            if rolled.as_ref().is_some_and(|p| common.last() == Some(p)) {
                last = key.clone();
                continue;
            }
            if contents.len() + common.len() == max {
                truncated = true;
                break;
            }
            last = key.clone();
            match rolled {
                Some(p) => common.push(p),
                None => contents.push((key, version)),
            }
        }
        let root = "ListBucketResult";
        let mut doc = Doc::new(root);
        doc.el("Name", &call.bucket)
            .el("Prefix", prefix)
            .el("MaxKeys", max);
        if let Some(d) = delimiter {
            doc.el("Delimiter", d);
        }
        if v2 {
            doc.el("KeyCount", contents.len() + common.len());
            doc.opt("ContinuationToken", call.param("continuation-token"));
            doc.opt("StartAfter", call.param("start-after"));
            if truncated {
                doc.el("NextContinuationToken", &last);
            }
        } else {
            doc.el("Marker", after);
            if truncated {
                doc.el("NextMarker", &last);
            }
        }
        doc.el("IsTruncated", truncated);
        for (key, v) in contents {
            doc.open("Contents")
                .el("Key", key)
                .el("LastModified", iso(v.modified))
                .el("ETag", &v.etag)
                .el("Size", v.size)
                .el("StorageClass", "STANDARD");
            if let Some(sum) = &v.checksum {
                doc.el("ChecksumAlgorithm", sum.algorithm)
                    .el("ChecksumType", sum.kind.as_str());
            }
            doc.close("Contents");
        }
        for p in common {
            doc.open("CommonPrefixes")
                .el("Prefix", p)
                .close("CommonPrefixes");
        }
        xml_answer(doc.end(root))
    }

    /// ListObjectVersions.
    pub(super) fn list_versions(&self, call: &Call) -> Answer {
        let prefix = call.param("prefix").unwrap_or_default();
        let key_marker = call.param("key-marker").unwrap_or_default();
        let version_marker = call.param("version-id-marker").filter(|v| !v.is_empty());
        let max = max_keys(call)?;
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let all = bucket
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(k, vs)| {
                vs.iter()
                    .rev()
                    .enumerate()
                    .map(move |(i, v)| (k.as_str(), v, i == 0))
            });
        // Past the markers: keys after key-marker, or the versions after version-id-marker.
        let mut passed = key_marker.is_empty();
        let mut page = Vec::new();
        let mut truncated = false;
        for entry in all {
            let (key, v, _) = entry;
            if !passed {
                match version_marker {
                    Some(vm) if key == key_marker => {
                        if v.version_id == vm {
                            passed = true;
                        }
                        continue;
                    }
                    _ if key <= key_marker => continue,
                    _ => passed = true,
                }
            }
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push(entry);
        }
        let root = "ListVersionsResult";
        let mut doc = Doc::new(root);
        doc.el("Name", &call.bucket)
            .el("Prefix", prefix)
            .el("KeyMarker", key_marker)
            .el("VersionIdMarker", version_marker.unwrap_or_default())
            .el("MaxKeys", max)
            .el("IsTruncated", truncated);
        if truncated && let Some((key, v, _)) = page.last() {
            doc.el("NextKeyMarker", key)
                .el("NextVersionIdMarker", &v.version_id);
        }
        for (key, v, latest) in page {
            if v.delete_marker {
                doc.open("DeleteMarker")
                    .el("Key", key)
                    .el("VersionId", &v.version_id)
                    .el("IsLatest", latest)
                    .el("LastModified", iso(v.modified))
                    .close("DeleteMarker");
            } else {
                doc.open("Version")
                    .el("Key", key)
                    .el("VersionId", &v.version_id)
                    .el("IsLatest", latest)
                    .el("LastModified", iso(v.modified))
                    .el("ETag", &v.etag)
                    .el("Size", v.size)
                    .el("StorageClass", "STANDARD")
                    .close("Version");
            }
        }
        xml_answer(doc.end(root))
    }
}

/// The full-object checksum a PutObject keeps: the SHA-256 the client sent, else its CRC-64/NVME.
fn put_checksum(given: &Sums) -> Option<ObjectChecksum> {
    let (algorithm, value) = match (given.sha256, given.crc64nvme) {
        (Some(digest), _) => ("SHA256", b64(&digest)),
        (None, Some(crc)) => ("CRC64NVME", crc64_b64(crc)),
        (None, None) => return None,
    };
    Some(ObjectChecksum {
        algorithm,
        value,
        kind: ChecksumType::FullObject,
    })
}

/// `max-keys`, at most [`MAX_KEYS`].
fn max_keys(call: &Call) -> Result<usize, S3Error> {
    match call.param("max-keys") {
        None => Ok(MAX_KEYS),
        Some(v) => v.parse::<usize>().map(|n| n.min(MAX_KEYS)).map_err(|_| {
            err(
                400,
                "InvalidArgument",
                "max-keys must be a non-negative integer",
            )
        }),
    }
}

/// Refuse Object Lock headers on a bucket without Object Lock.
pub(super) fn check_lock_allowed(enabled: bool, asked: &super::model::Lock) -> Result<(), S3Error> {
    if !enabled && (asked.mode.is_some() || asked.legal_hold) {
        return Err(err(
            400,
            "InvalidRequest",
            "Bucket is missing Object Lock Configuration",
        ));
    }
    Ok(())
}

/// `PreconditionFailed` (an `If-None-Match: *` write to an existing key).
pub(super) fn precondition_failed() -> S3Error {
    err(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
}

/// `NoSuchKey`.
fn no_key(key: &str) -> S3Error {
    err(
        404,
        "NoSuchKey",
        format!("The specified key does not exist: {key}"),
    )
}

/// A `Range: bytes=...` of an object of `size` bytes: `(start, len)`, `None` for the whole object
/// (an unparsable or multi-range header is ignored, as S3 does).
fn parse_range(text: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || {
        err(
            416,
            "InvalidRange",
            format!("The requested range {text} is not satisfiable (object of {size} bytes)"),
        )
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if end >= start => (start, end.min(size.saturating_sub(1))),
        (Ok(start), Err(_)) if b.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end - start + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).ok().flatten(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100).ok().flatten(), Some((90, 10)));
        assert_eq!(parse_range("bytes=-5", 100).ok().flatten(), Some((95, 5)));
        assert_eq!(
            parse_range("bytes=95-200", 100).ok().flatten(),
            Some((95, 5))
        );
        assert!(parse_range("bytes=100-", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,4-5", 100).ok().flatten(), None);
    }
}
