//! What the S3 stand-in holds: buckets (versioning, Object Lock), object versions (bytes or only
//! their length and checksums), open multipart uploads (their checksum algorithm) and their parts.
//! One lock guards it all and is held only to look up or insert, never while a body streams in.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::SystemTime;

use bytes::Bytes;

/// An object's or a part's bytes.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// Kept, in order (a multipart object keeps its parts' buffers).
    Kept(Vec<Bytes>),
    /// Only counted (length and checksums known; "count" mode).
    Counted,
}

impl Data {
    /// `len` bytes from `start`, or `None` when they were not kept.
    pub(crate) fn range(&self, start: u64, len: u64) -> Option<VecDeque<Bytes>> {
        let Data::Kept(chunks) = self else {
            return None;
        };
        let mut out = VecDeque::new();
        let (mut at, end) = (0u64, start + len);
        for chunk in chunks {
            let (from, to) = (at, at + chunk.len() as u64);
            at = to;
            if to <= start || from >= end {
                continue;
            }
            let lo = start.max(from) - from;
            let hi = end.min(to) - from;
            out.push_back(chunk.slice(lo as usize..hi as usize));
        }
        Some(out)
    }
}

/// The checksums of a body: those computed as it arrived, or those the client sent (and that
/// matched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    /// SHA-256.
    pub(crate) sha256: Option<[u8; 32]>,
    /// CRC-64/NVME.
    pub(crate) crc64nvme: Option<u64>,
}

/// A multipart upload's checksum algorithm (CreateMultipartUpload's `x-amz-checksum-algorithm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// SHA-256, composite: each part's checked, the object's `base64(sha256(part digests))-N`.
    Sha256,
    /// CRC-64/NVME, full object: each part's checked, the object's combined from the parts'.
    Crc64Nvme,
    /// Another (`CRC32`, `CRC32C`, `SHA1`): echoed and listed as composite, not checked.
    Other(String),
}

impl Algorithm {
    /// The algorithm a header names (any case).
    pub(crate) fn parse(name: &str) -> Algorithm {
        match name.to_ascii_uppercase().as_str() {
            "SHA256" => Algorithm::Sha256,
            "CRC64NVME" => Algorithm::Crc64Nvme,
            other => Algorithm::Other(other.to_string()),
        }
    }

    /// Its name as S3 writes it (`SHA256`, `CRC64NVME`).
    pub(crate) fn name(&self) -> &str {
        match self {
            Algorithm::Sha256 => "SHA256",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Other(name) => name,
        }
    }

    /// How an object's checksum of this algorithm covers it.
    pub(crate) fn kind(&self) -> ChecksumType {
        match self {
            Algorithm::Crc64Nvme => ChecksumType::FullObject,
            Algorithm::Sha256 | Algorithm::Other(_) => ChecksumType::Composite,
        }
    }
}

/// How an object's checksum covers it (`x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumType {
    /// A checksum of the parts' checksums, `...-N`.
    Composite,
    /// A checksum of the whole object's bytes.
    FullObject,
}

impl ChecksumType {
    /// As S3 writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }
}

/// An object's checksum, as HeadObject reports it in checksum mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectChecksum {
    /// `SHA256` or `CRC64NVME`.
    pub(crate) algorithm: &'static str,
    /// Base64 (`...-N` when composite).
    pub(crate) value: String,
    /// Composite or full object.
    pub(crate) kind: ChecksumType,
}

impl ObjectChecksum {
    /// The header carrying it (`x-amz-checksum-crc64nvme`).
    pub(crate) fn header(&self) -> String {
        format!("x-amz-checksum-{}", self.algorithm.to_ascii_lowercase())
    }

    /// The XML element carrying it (`ChecksumCRC64NVME`).
    pub(crate) fn element(&self) -> String {
        format!("Checksum{}", self.algorithm)
    }
}

/// Object Lock state of a version (or requested for an upload).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lock {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub(crate) mode: Option<String>,
    /// Retain until.
    pub(crate) retain_until: Option<SystemTime>,
    /// Legal hold on.
    pub(crate) legal_hold: bool,
}

impl Lock {
    /// Whether the version may not be deleted now.
    pub(crate) fn protects(&self, now: SystemTime) -> bool {
        self.legal_hold || self.retain_until.is_some_and(|t| t > now)
    }
}

/// A bucket's default retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// Days.
    pub days: u32,
}

/// One version of an object, or a delete marker.
#[derive(Debug, Clone)]
pub(crate) struct ObjectVersion {
    /// Version id (`null` in an unversioned bucket).
    pub(crate) version_id: String,
    /// A delete marker, no data.
    pub(crate) delete_marker: bool,
    /// Bytes.
    pub(crate) data: Data,
    /// Length.
    pub(crate) size: u64,
    /// ETag, quoted.
    pub(crate) etag: String,
    /// Checksum, when the client sent one (PutObject) or the upload had a checked algorithm.
    pub(crate) checksum: Option<ObjectChecksum>,
    /// Parts, for a multipart object.
    pub(crate) parts: Option<u32>,
    /// Content-Type.
    pub(crate) content_type: String,
    /// Written.
    pub(crate) modified: SystemTime,
    /// Object Lock.
    pub(crate) lock: Lock,
}

/// A part of an open upload.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// Length.
    pub(crate) size: u64,
    /// The checksums the client sent for it (and that matched; S3 only reports those).
    pub(crate) given: Sums,
    /// ETag, quoted.
    pub(crate) etag: String,
    /// Bytes.
    pub(crate) data: Data,
    /// Uploaded.
    pub(crate) modified: SystemTime,
}

/// An open multipart upload.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// Key.
    pub(crate) key: String,
    /// Creation order (listing order after the key).
    pub(crate) seq: u64,
    /// Created.
    pub(crate) initiated: SystemTime,
    /// The checksum algorithm it was created with (SHA256 and CRC64NVME are checked).
    pub(crate) algorithm: Option<Algorithm>,
    /// Content-Type of the object to be.
    pub(crate) content_type: String,
    /// Object Lock of the object to be.
    pub(crate) lock: Lock,
    /// Parts by number.
    pub(crate) parts: BTreeMap<u32, Part>,
}

/// A bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    /// Created.
    pub(crate) created: Option<SystemTime>,
    /// Versioning status: `Enabled`, `Suspended` or never set.
    pub(crate) versioning: Option<String>,
    /// Object Lock enabled.
    pub(crate) lock_enabled: bool,
    /// Default retention.
    pub(crate) default_retention: Option<Retention>,
    /// Versions of each key, oldest first.
    pub(crate) objects: BTreeMap<String, Vec<ObjectVersion>>,
    /// Open uploads by id.
    pub(crate) uploads: HashMap<String, Upload>,
}

impl Bucket {
    /// The newest version of `key`, delete markers included.
    pub(crate) fn latest(&self, key: &str) -> Option<&ObjectVersion> {
        self.objects.get(key).and_then(|v| v.last())
    }

    /// Whether `key` names an object now (its newest version is not a delete marker).
    pub(crate) fn exists(&self, key: &str) -> bool {
        self.latest(key).is_some_and(|v| !v.delete_marker)
    }

    /// Whether versions are kept.
    pub(crate) fn versioned(&self) -> bool {
        self.versioning.as_deref() == Some("Enabled")
    }

    /// Store `version` as the newest of `key` (replacing the `null` version when unversioned).
    pub(crate) fn put(&mut self, key: &str, version: ObjectVersion) {
        let versions = self.objects.entry(key.to_string()).or_default();
        if version.version_id == "null" {
            versions.retain(|v| v.version_id != "null");
        }
        versions.push(version);
    }

    /// The Object Lock of a new object: what the request asked for, else the bucket's default
    /// retention counted from `now`.
    pub(crate) fn lock_for(&self, asked: Lock, now: SystemTime) -> Lock {
        if asked.mode.is_some() {
            return asked;
        }
        match &self.default_retention {
            Some(r) => Lock {
                mode: Some(r.mode.clone()),
                retain_until: Some(
                    now + std::time::Duration::from_secs(u64::from(r.days) * 86_400),
                ),
                legal_hold: asked.legal_hold,
            },
            None => asked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cross_chunks() {
        let data = Data::Kept(vec![
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efgh"),
        ]);
        let got: Vec<u8> = data
            .range(2, 4)
            .expect("kept")
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got, b"cdef");
        assert!(Data::Counted.range(0, 1).is_none());
    }
}
