//! What the store's calls return: stored objects, multipart parts, Object Lock state, versions.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A value and the AWS request id of the call that produced it (custody events cite it).
#[derive(Debug, Clone)]
pub struct Called<T> {
    /// The result.
    pub value: T,
    /// `x-amzn-RequestId` (or S3's `x-amz-request-id`), when AWS sent one.
    pub request_id: Option<String>,
}

impl<T> Called<T> {
    /// Wrap a value with its request id.
    pub fn new(value: T, request_id: Option<String>) -> Self {
        Called { value, request_id }
    }
}

/// An object stored under Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: Option<String>,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The checksum S3 checks on every part of a multipart upload, fixed when the upload is created.
///
/// The content of evidence is proven by SHA-256 elsewhere (AWS's per-block checksums, the bag
/// manifest, the image hash); S3's checksum guards the transfer and the stored object. New
/// uploads use CRC-64/NVME, which S3 combines into a checksum of the whole object and which costs
/// a small fraction of a SHA-256 pass; uploads opened by earlier versions keep SHA-256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PartAlgorithm {
    /// CRC-64/NVME, checksum type `FULL_OBJECT`: what new uploads use.
    #[default]
    Crc64Nvme,
    /// SHA-256, checksum type `COMPOSITE`: uploads opened before CRC-64/NVME.
    Sha256,
}

impl PartAlgorithm {
    /// S3's name (`x-amz-checksum-algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            PartAlgorithm::Crc64Nvme => "CRC64NVME",
            PartAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm S3 names (`CRC64NVME`, `SHA256`, any case), `None` for any other.
    pub fn from_name(name: &str) -> Option<Self> {
        [PartAlgorithm::Crc64Nvme, PartAlgorithm::Sha256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The checksum of `data` in this algorithm, as S3 reports it.
    pub fn checksum(self, data: &[u8]) -> PartChecksum {
        let mut hasher = PartHasher::new(self);
        hasher.update(data);
        hasher.finish()
    }
}

impl std::fmt::Display for PartAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes a part checksum over chunks (the in-memory store and tests; the S3 adapter leaves it
/// to the SDK).
pub enum PartHasher {
    /// CRC-64/NVME.
    Crc64Nvme(crc_fast::Digest),
    /// SHA-256.
    Sha256(Sha256),
}

impl PartHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: PartAlgorithm) -> Self {
        match algorithm {
            PartAlgorithm::Crc64Nvme => {
                PartHasher::Crc64Nvme(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
            }
            PartAlgorithm::Sha256 => PartHasher::Sha256(Sha256::new()),
        }
    }

    /// Add bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            PartHasher::Crc64Nvme(d) => d.update(data),
            PartHasher::Sha256(h) => h.update(data),
        }
    }

    /// The checksum of everything added.
    pub fn finish(self) -> PartChecksum {
        match self {
            PartHasher::Crc64Nvme(d) => PartChecksum::Crc64nvme(b64(&d.finalize().to_be_bytes())),
            PartHasher::Sha256(h) => PartChecksum::Sha256(b64(&h.finalize())),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A part's checksum as S3 reports it (base64). Serialised as `"sha256": ...` or
/// `"crc64nvme": ...`, so checkpoints written before CRC-64/NVME read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartChecksum {
    /// SHA-256 of the part.
    Sha256(String),
    /// CRC-64/NVME of the part (8 bytes, big-endian).
    Crc64nvme(String),
}

impl PartChecksum {
    /// The algorithm.
    pub fn algorithm(&self) -> PartAlgorithm {
        match self {
            PartChecksum::Sha256(_) => PartAlgorithm::Sha256,
            PartChecksum::Crc64nvme(_) => PartAlgorithm::Crc64Nvme,
        }
    }

    /// The base64 value.
    pub fn value(&self) -> &str {
        match self {
            PartChecksum::Sha256(v) | PartChecksum::Crc64nvme(v) => v,
        }
    }
}

impl std::fmt::Display for PartChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algorithm(), self.value())
    }
}

/// An open multipart upload: its id and the checksum its parts carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// S3's upload id.
    pub id: String,
    /// The part checksum chosen when the upload was created.
    pub algorithm: PartAlgorithm,
}

/// A multipart upload S3 holds open, and what its parts hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingUpload {
    /// The object it is for.
    pub key: String,
    /// S3's upload id.
    pub upload_id: String,
    /// When it was created (RFC 3339), when S3 says.
    pub initiated: Option<String>,
    /// Parts uploaded.
    pub parts: u32,
    /// Bytes in those parts.
    pub bytes: u64,
}

/// A part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPart {
    /// Part number, from 1.
    pub number: u32,
    /// Bytes.
    pub size: u64,
    /// The part's checksum, as S3 reports it.
    #[serde(flatten)]
    pub checksum: PartChecksum,
    /// The part's ETag (CompleteMultipartUpload names parts by it).
    #[serde(default)]
    pub etag: String,
}

/// S3's checksum of a completed multipart object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectChecksum {
    /// `base64(SHA-256(part digest 1 || ... || part digest N))-N` (checksum type `COMPOSITE`).
    CompositeSha256(String),
    /// CRC-64/NVME of the whole object, base64 (checksum type `FULL_OBJECT`).
    Crc64Nvme(String),
}

impl ObjectChecksum {
    /// The base64 value (with `-N` for a composite).
    pub fn value(&self) -> &str {
        match self {
            ObjectChecksum::CompositeSha256(v) | ObjectChecksum::Crc64Nvme(v) => v,
        }
    }
}

impl std::fmt::Display for ObjectChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectChecksum::CompositeSha256(v) => write!(f, "composite SHA-256 {v}"),
            ObjectChecksum::Crc64Nvme(v) => write!(f, "CRC64NVME {v}"),
        }
    }
}

/// A completed multipart object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedObject {
    /// Version id.
    pub version_id: Option<String>,
    /// S3's checksum of the object, when reported.
    pub checksum: Option<ObjectChecksum>,
    /// Its size in bytes, when reported (HeadObject).
    pub size: Option<u64>,
}

/// The checksum S3 gives the object made of `parts` (in order), uploaded with `algorithm`:
/// SHA-256 parts make the composite `base64(SHA-256(part digests))-N`; CRC-64/NVME parts
/// combine into the CRC of the whole object. A part in another algorithm, or whose checksum is
/// not base64 of the right length, is an error naming it.
pub fn object_checksum(
    algorithm: PartAlgorithm,
    parts: &[StoredPart],
) -> Result<ObjectChecksum, String> {
    let decoded = |part: &StoredPart, len: usize| {
        if part.checksum.algorithm() != algorithm {
            return Err(format!(
                "part {} carries {}, the upload {algorithm}",
                part.number, part.checksum
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(part.checksum.value())
            .ok()
            .filter(|d| d.len() == len)
            .ok_or_else(|| {
                format!(
                    "part {}: {} is not a {algorithm} value",
                    part.number, part.checksum
                )
            })
    };
    match algorithm {
        PartAlgorithm::Sha256 => {
            let mut digests = Vec::with_capacity(parts.len() * 32);
            for part in parts {
                digests.extend(decoded(part, 32)?);
            }
            Ok(ObjectChecksum::CompositeSha256(format!(
                "{}-{}",
                b64(&Sha256::digest(&digests)),
                parts.len()
            )))
        }
        PartAlgorithm::Crc64Nvme => {
            let mut crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"");
            for part in parts {
                let bytes: [u8; 8] = decoded(part, 8)?.try_into().expect("length checked");
                crc = crc_fast::checksum_combine(
                    crc_fast::CrcAlgorithm::Crc64Nvme,
                    crc,
                    u64::from_be_bytes(bytes),
                    part.size,
                );
            }
            Ok(ObjectChecksum::Crc64Nvme(b64(&crc.to_be_bytes())))
        }
    }
}

/// The Object Lock state of the evidence bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLock {
    /// Object Lock enabled.
    pub enabled: bool,
    /// Default retention mode (`COMPLIANCE`, `GOVERNANCE`), if any.
    pub default_mode: Option<String>,
    /// Default retention days (years converted), if any.
    pub default_days: Option<u32>,
    /// Versioning status.
    pub versioning: Option<String>,
}

/// The Object Lock state of one stored object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// Retention mode (`COMPLIANCE`, `GOVERNANCE`), if any.
    pub mode: Option<String>,
    /// Retain-until, seconds since the epoch.
    pub retain_until: Option<i64>,
    /// Legal hold on.
    pub legal_hold: bool,
    /// When the object was written, seconds since the epoch.
    pub last_modified: Option<i64>,
}

/// One stored version of an object (or a delete marker hiding the object's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// A delete marker, not data.
    pub delete_marker: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, data: &[u8], algorithm: PartAlgorithm) -> StoredPart {
        StoredPart {
            number,
            size: data.len() as u64,
            checksum: algorithm.checksum(data),
            etag: String::new(),
        }
    }

    #[test]
    fn crc64nvme_has_its_check_value() {
        let PartChecksum::Crc64nvme(value) = PartAlgorithm::Crc64Nvme.checksum(b"123456789") else {
            panic!("not a CRC");
        };
        assert_eq!(value, b64(&0xAE8B_1486_0A79_9888u64.to_be_bytes()));
    }

    #[test]
    fn crc64nvme_parts_combine_into_the_whole_objects_crc() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let parts = [
            part(1, &data[..40_000], PartAlgorithm::Crc64Nvme),
            part(2, &data[40_000..40_001], PartAlgorithm::Crc64Nvme),
            part(3, &data[40_001..], PartAlgorithm::Crc64Nvme),
        ];
        let whole = PartAlgorithm::Crc64Nvme.checksum(&data);
        assert_eq!(
            object_checksum(PartAlgorithm::Crc64Nvme, &parts),
            Ok(ObjectChecksum::Crc64Nvme(whole.value().into()))
        );
    }

    #[test]
    fn sha256_parts_make_s3s_composite() {
        let parts = [
            part(1, b"hello ", PartAlgorithm::Sha256),
            part(2, b"world", PartAlgorithm::Sha256),
        ];
        let mut digests = Sha256::digest(b"hello ").to_vec();
        digests.extend(Sha256::digest(b"world"));
        assert_eq!(
            object_checksum(PartAlgorithm::Sha256, &parts),
            Ok(ObjectChecksum::CompositeSha256(format!(
                "{}-2",
                b64(&Sha256::digest(&digests))
            )))
        );
    }

    #[test]
    fn a_part_in_another_algorithm_is_named() {
        let parts = [
            part(1, b"a", PartAlgorithm::Crc64Nvme),
            part(2, b"b", PartAlgorithm::Sha256),
        ];
        let err = object_checksum(PartAlgorithm::Crc64Nvme, &parts).expect_err("mixed");
        assert!(err.contains("part 2 carries SHA256"), "{err}");
    }

    #[test]
    fn checkpoints_written_with_sha256_read_back() {
        let old = r#"{"number":3,"size":5,"sha256":"abc=","etag":"e"}"#;
        let back: StoredPart = serde_json::from_str(old).expect("old part");
        assert_eq!(back.checksum, PartChecksum::Sha256("abc=".into()));
        let new = serde_json::to_string(&part(1, b"x", PartAlgorithm::Crc64Nvme)).expect("json");
        assert!(new.contains(r#""crc64nvme":""#), "{new}");
        let again: StoredPart = serde_json::from_str(&new).expect("new part");
        assert_eq!(again.checksum.algorithm(), PartAlgorithm::Crc64Nvme);
    }
}
