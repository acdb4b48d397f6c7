//! Trail digests and log file validation, as `aws cloudtrail validate-logs` does it
//! (awscli/customizations/cloudtrail/validation.py), on objects already read from the trail
//! bucket.
//!
//! Every hour CloudTrail writes, per account, region and trail, a digest file: the SHA-256 of each
//! log file it delivered, and the signature and hash of the digest before it, signed with RSA
//! (SHA256withRSA) under a key [`PublicKey`] that ListPublicKeys publishes. [`validate`] checks
//! each digest's signature, follows the chain newest to oldest, and re-hashes every log file the
//! trusted digests list; every problem is a [`Finding`] naming the file, in validate-logs' words.
//!
//! Submodules: `key` (digest object keys), `read` (gzip, digest JSON, ListPublicKeys) and `chain`
//! (the validation itself).
//!
//! A caller that hashes log files as it copies them (and need not hold them all) gives
//! [`validate_hashed`] what it read of each ([`LogRead`]) instead of the bytes.

mod chain;
mod key;
mod read;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::times;

pub use chain::{LogRead, string_to_sign, validate, validate_hashed, validate_with};
pub use key::{DigestKey, digest_key_time};
pub use read::{
    HASH_ALGORITHM, KeyListError, LogError, LogFile, MAX_DIGEST_BYTES, MAX_LOG_BYTES,
    SIGNATURE_ALGORITHM, parse_digest, parse_public_keys, read_log,
};

/// An object as read from the trail bucket: its bytes as stored (gzip) and its user metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailObject {
    /// The bucket it was read from.
    pub bucket: String,
    /// Its key there.
    pub key: String,
    /// Its bytes as stored (gzip).
    pub bytes: Vec<u8>,
    /// Its user metadata: keys lowercase, without the `x-amz-meta-` prefix (`signature`,
    /// `signature-algorithm`).
    pub metadata: BTreeMap<String, String>,
}

impl TrailObject {
    /// `s3://bucket/key`: how findings name it.
    pub fn url(&self) -> String {
        s3_url(&self.bucket, &self.key)
    }
}

/// `s3://bucket/key`.
pub fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// One CloudTrail public key, as ListPublicKeys returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `Fingerprint`: what a digest's `digestPublicKeyFingerprint` names.
    pub fingerprint: String,
    /// The PKCS#1 RSAPublicKey DER (the API's `Value`, base64-decoded).
    pub der: Vec<u8>,
    /// `ValidityStartTime`.
    pub valid_from: OffsetDateTime,
    /// `ValidityEndTime`.
    pub valid_until: OffsetDateTime,
}

/// One log file a digest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestLogFile {
    /// `s3Bucket`.
    pub bucket: String,
    /// `s3Object`.
    pub key: String,
    /// `hashValue`: SHA-256 hex of the uncompressed log file.
    pub hash_value: String,
    /// `hashAlgorithm` (always [`HASH_ALGORITHM`]; others do not parse).
    pub hash_algorithm: String,
    /// `newestEventTime`.
    pub newest_event_time: Option<OffsetDateTime>,
    /// `oldestEventTime`.
    pub oldest_event_time: Option<OffsetDateTime>,
}

/// A parsed digest file: the JSON fields CloudTrail documents, where it was read, its signature
/// metadata and the SHA-256 of its uncompressed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The bucket it was read from.
    pub bucket: String,
    /// The key it was read from.
    pub key: String,
    /// `awsAccountId`.
    pub account_id: Option<String>,
    /// `digestStartTime`.
    pub start: OffsetDateTime,
    /// `digestEndTime`.
    pub end: OffsetDateTime,
    /// `digestEndTime` as written (the signed string holds the text, not a reformatted time).
    pub end_text: String,
    /// `digestS3Bucket`: where CloudTrail delivered it.
    pub s3_bucket: String,
    /// `digestS3Object`.
    pub s3_object: String,
    /// `digestPublicKeyFingerprint`.
    pub public_key_fingerprint: String,
    /// `digestSignatureAlgorithm`, as the content declares it.
    pub declared_signature_algorithm: Option<String>,
    /// `newestEventTime`.
    pub newest_event_time: Option<OffsetDateTime>,
    /// `oldestEventTime`.
    pub oldest_event_time: Option<OffsetDateTime>,
    /// `previousDigestS3Bucket` (null for the first digest of a chain).
    pub previous_bucket: Option<String>,
    /// `previousDigestS3Object`.
    pub previous_object: Option<String>,
    /// `previousDigestHashValue`: SHA-256 hex of the previous digest's uncompressed content.
    pub previous_hash: Option<String>,
    /// `previousDigestHashAlgorithm`.
    pub previous_hash_algorithm: Option<String>,
    /// `previousDigestSignature`: the previous digest's signature, hex.
    pub previous_signature: Option<String>,
    /// `logFiles`.
    pub log_files: Vec<DigestLogFile>,
    /// The `signature` metadata: hex.
    pub signature: String,
    /// The `signature-algorithm` metadata.
    pub signature_algorithm: String,
    /// SHA-256 hex of the uncompressed content.
    pub sha256: String,
}

impl Digest {
    /// `s3://bucket/key` where it was read.
    pub fn url(&self) -> String {
        s3_url(&self.bucket, &self.key)
    }

    /// The log files it lists (`logFiles`).
    pub fn log_files(&self) -> &[DigestLogFile] {
        &self.log_files
    }
}

/// A log file a trusted digest lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileRef {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// SHA-256 hex of its uncompressed content, as the digest lists it (lowercase).
    pub sha256: String,
}

/// What [`validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Validation {
    /// Digests whose signature verified and whose chain link held.
    pub digests_valid: u64,
    /// Digests that failed, plus digests named as a previous digest but missing (validate-logs
    /// counts those too).
    pub digests_invalid: u64,
    /// Log files whose SHA-256 matched their trusted digest.
    pub logs_valid: u64,
    /// Log files of trusted digests that are missing, changed, not gzip, or in another bucket.
    pub logs_invalid: u64,
    /// Every finding, per chain newest to oldest (a digest's own, its link to the previous one,
    /// then its log files).
    pub findings: Vec<Finding>,
    /// The earliest `digestStartTime` of a trusted digest.
    #[serde(with = "times::serde_rfc3339_option")]
    pub first_start: Option<OffsetDateTime>,
    /// The latest `digestEndTime` of a trusted digest.
    #[serde(with = "times::serde_rfc3339_option")]
    pub last_end: Option<OffsetDateTime>,
    /// Every log file the trusted digests list (whatever its own result), oldest digest first,
    /// in each digest's order.
    pub log_files: Vec<LogFileRef>,
}

impl Validation {
    /// No failure finding (a [`Finding::Gap`] is not one). An empty set of digests is `ok`: the
    /// caller decides whether a trail with no digests in the window is acceptable.
    pub fn ok(&self) -> bool {
        !self.findings.iter().any(Finding::is_failure)
    }
}

/// What is wrong, naming the file (`key` fields hold the object's `s3://bucket/key`). The
/// display text is validate-logs' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Finding {
    /// Not gzip, not JSON, or a required field missing or malformed.
    #[error("Digest file {key} INVALID: invalid format ({why})")]
    DigestInvalidFormat {
        /// The digest.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// `digestS3Bucket`/`digestS3Object` differ from where it was read.
    #[error("Digest file {key} INVALID: has been moved from its original location {recorded}")]
    DigestMoved {
        /// Where it was read.
        key: String,
        /// Where CloudTrail delivered it (`s3://digestS3Bucket/digestS3Object`).
        recorded: String,
    },
    /// No `signature` or `signature-algorithm` metadata.
    #[error(
        "Digest file {key} INVALID: signature verification failed (no signature or signature-algorithm metadata)"
    )]
    DigestSignatureMissing {
        /// The digest.
        key: String,
    },
    /// The signature does not verify over the digest's string to sign.
    #[error("Digest file {key} INVALID: signature verification failed")]
    DigestSignatureInvalid {
        /// The digest.
        key: String,
    },
    /// No public key with the digest's fingerprint was valid for its period.
    #[error("Digest file {key} INVALID: public key not found for fingerprint {fingerprint}")]
    PublicKeyNotFound {
        /// The digest.
        key: String,
        /// `digestPublicKeyFingerprint`.
        fingerprint: String,
    },
    /// A `previousDigestS3Object` that is not among the digests.
    #[error("Digest file {key} INVALID: not found (the previous digest of {referenced_by})")]
    DigestMissing {
        /// The missing digest.
        key: String,
        /// The digest that names it.
        referenced_by: String,
    },
    /// A digest's previous-digest fields do not match the digest before it.
    #[error("Digest file {previous} INVALID: not the previous digest {key} signed for: {why}")]
    ChainBroken {
        /// The newer digest, whose signed fields name the previous one.
        key: String,
        /// The older digest found in its place.
        previous: String,
        /// What differs.
        why: String,
    },
    /// A digest that starts a new chain after an earlier one: CloudTrail delivered no log files
    /// in between (logging stopped, or validation off). Informational.
    #[error("No log files were delivered by CloudTrail between {} and {}",
        times::rfc3339(*.from), times::rfc3339(*.to))]
    Gap {
        /// The end of the earlier chain's last digest.
        #[serde(with = "times::serde_rfc3339")]
        from: OffsetDateTime,
        /// The start of the new chain's first digest.
        #[serde(with = "times::serde_rfc3339")]
        to: OffsetDateTime,
    },
    /// A log file a trusted digest lists that is not stored.
    #[error("Log file {key} INVALID: not found (listed by {digest})")]
    LogMissing {
        /// The log file.
        key: String,
        /// The digest that lists it.
        digest: String,
    },
    /// A log file whose uncompressed SHA-256 is not the digest's.
    #[error("Log file {key} INVALID: hash value doesn't match (digest {expected}, file {actual})")]
    LogHashMismatch {
        /// The log file.
        key: String,
        /// The digest's `hashValue`.
        expected: String,
        /// The SHA-256 of the stored file's content.
        actual: String,
    },
    /// A log file that is not gzip, or has data after its gzip stream.
    #[error("Log file {key} INVALID: invalid format")]
    LogInvalidFormat {
        /// The log file.
        key: String,
    },
    /// A log file listed in another bucket than its digest's: not fetched, not trusted.
    #[error("Log file {key} INVALID: not in the bucket of its digest {digest}")]
    LogOtherBucket {
        /// The log file.
        key: String,
        /// The digest that lists it.
        digest: String,
    },
}

impl Finding {
    /// Whether it makes the validation fail (all but [`Finding::Gap`]).
    pub fn is_failure(&self) -> bool {
        !matches!(self, Finding::Gap { .. })
    }

    /// The file it names (`s3://bucket/key`); `None` for a gap.
    pub fn key(&self) -> Option<&str> {
        match self {
            Finding::DigestInvalidFormat { key, .. }
            | Finding::DigestMoved { key, .. }
            | Finding::DigestSignatureMissing { key }
            | Finding::DigestSignatureInvalid { key }
            | Finding::PublicKeyNotFound { key, .. }
            | Finding::DigestMissing { key, .. }
            | Finding::ChainBroken { key, .. }
            | Finding::LogMissing { key, .. }
            | Finding::LogHashMismatch { key, .. }
            | Finding::LogInvalidFormat { key }
            | Finding::LogOtherBucket { key, .. } => Some(key),
            Finding::Gap { .. } => None,
        }
    }

    /// A stable code for JSON (`digest-signature-invalid`, `log-hash-mismatch`, ...): the
    /// `code` tag of the serialised finding.
    pub fn code(&self) -> &'static str {
        match self {
            Finding::DigestInvalidFormat { .. } => "digest-invalid-format",
            Finding::DigestMoved { .. } => "digest-moved",
            Finding::DigestSignatureMissing { .. } => "digest-signature-missing",
            Finding::DigestSignatureInvalid { .. } => "digest-signature-invalid",
            Finding::PublicKeyNotFound { .. } => "public-key-not-found",
            Finding::DigestMissing { .. } => "digest-missing",
            Finding::ChainBroken { .. } => "chain-broken",
            Finding::Gap { .. } => "gap",
            Finding::LogMissing { .. } => "log-missing",
            Finding::LogHashMismatch { .. } => "log-hash-mismatch",
            Finding::LogInvalidFormat { .. } => "log-invalid-format",
            Finding::LogOtherBucket { .. } => "log-other-bucket",
        }
    }
}
