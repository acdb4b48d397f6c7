//! Reading what the trail bucket and ListPublicKeys hold: gzip members inflated whole (nothing
//! after the member), digest files parsed into [`Digest`], public key lists into [`PublicKey`].

use std::io::Read;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::{Digest, DigestLogFile, Finding, PublicKey, TrailObject};
use crate::times;

/// The largest digest file content read (uncompressed). A digest lists one line of ~400 bytes per
/// log file of one hour and region; 64 MiB is thousands of times what CloudTrail writes, and
/// bounds what a crafted gzip bomb can make us hold.
pub const MAX_DIGEST_BYTES: u64 = 64 << 20;

/// The hash algorithm CloudTrail names for log files and previous digests.
pub const HASH_ALGORITHM: &str = "SHA-256";

/// The signature algorithm CloudTrail names in a digest's `signature-algorithm` metadata.
pub const SIGNATURE_ALGORITHM: &str = "SHA256withRSA";

/// Inflate one gzip member into `sink`, reading at most `limit` bytes of content. Errors when the
/// input is not gzip, is truncated, holds more than `limit`, or has anything after the member
/// (validate-logs: "unexpected data after end of compressed stream").
fn inflate(bytes: &[u8], limit: u64, sink: &mut impl std::io::Write) -> Result<u64, String> {
    let decoder = flate2::bufread::GzDecoder::new(bytes);
    let mut limited = decoder.take(limit.saturating_add(1));
    let written = std::io::copy(&mut limited, sink).map_err(|e| format!("not gzip: {e}"))?;
    if written > limit {
        return Err(format!("inflates to more than {limit} bytes"));
    }
    let rest = limited.into_inner().into_inner();
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of unexpected data after the end of the compressed stream",
            rest.len()
        ));
    }
    Ok(written)
}

/// SHA-256 (hex) of a gzip file's content, streamed (log files are hashed, never held inflated).
pub(crate) fn gunzip_sha256(bytes: &[u8]) -> Result<String, String> {
    let mut hasher = Sha256::new();
    inflate(bytes, u64::MAX - 1, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The largest log file content [`read_log`] holds (uncompressed). CloudTrail delivers a region's
/// events about every five minutes, in files of kilobytes to a few tens of megabytes; 1 GiB
/// bounds what a crafted gzip bomb can make us hold. Validation itself streams and has no bound.
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// A trail log file read whole: its content's SHA-256 and its records.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    /// SHA-256 hex of the uncompressed content (what a digest's `hashValue` names).
    pub sha256: String,
    /// Its `Records`: full CloudTrail records.
    pub records: Vec<Value>,
}

/// Why a stored log file does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// Not one whole gzip member (or larger than [`MAX_LOG_BYTES`]).
    #[error("the log file is not gzip: {0}")]
    NotGzip(String),
    /// Gzip, but not a JSON object with a `Records` list.
    #[error("the log file (content SHA-256 {sha256}) is not a CloudTrail log: {why}")]
    NotRecords {
        /// SHA-256 hex of its uncompressed content.
        sha256: String,
        /// What is wrong.
        why: String,
    },
}

/// Read a stored trail log file (gzip of `{"Records":[...]}`): its SHA-256 and its records.
pub fn read_log(bytes: &[u8]) -> Result<LogFile, LogError> {
    let mut content = Vec::new();
    inflate(bytes, MAX_LOG_BYTES, &mut content).map_err(LogError::NotGzip)?;
    let sha256 = hex::encode(Sha256::digest(&content));
    let not_records = |why: String| LogError::NotRecords {
        sha256: sha256.clone(),
        why,
    };
    let mut value: Value =
        serde_json::from_slice(&content).map_err(|e| not_records(format!("not JSON: {e}")))?;
    let records = match value.get_mut("Records").map(Value::take) {
        Some(Value::Array(records)) => records,
        Some(_) => return Err(not_records("Records is not a list".into())),
        None => return Err(not_records("Records is missing".into())),
    };
    Ok(LogFile { sha256, records })
}

/// Parse a digest file as read from the trail bucket, as validation.py's `fetch_digest` and
/// `_load_and_validate_digest` do before any signature: gzip and JSON (else
/// [`Finding::DigestInvalidFormat`]), the `signature` and `signature-algorithm` metadata (else
/// [`Finding::DigestSignatureMissing`]), then the fields CloudTrail documents, required where
/// validate-logs needs them (`digestStartTime`, `digestEndTime`, `digestS3Bucket`,
/// `digestS3Object`, `digestPublicKeyFingerprint`, `previousDigestSignature` (may be null),
/// `logFiles`).
pub fn parse_digest(object: &TrailObject) -> Result<Digest, Finding> {
    let url = object.url();
    let invalid = |why: String| Finding::DigestInvalidFormat {
        key: url.clone(),
        why,
    };
    let mut content = Vec::new();
    inflate(&object.bytes, MAX_DIGEST_BYTES, &mut content).map_err(&invalid)?;
    let sha256 = hex::encode(Sha256::digest(&content));
    let value: Value =
        serde_json::from_slice(&content).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let json = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;

    let (Some(signature), Some(signature_algorithm)) = (
        object.metadata.get("signature"),
        object.metadata.get("signature-algorithm"),
    ) else {
        return Err(Finding::DigestSignatureMissing { key: url });
    };

    let field = Fields { json, url: &url };
    let end_text = field.string("digestEndTime")?;
    let log_files = match json.get("logFiles") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, entry)| log_file(entry, i, &url))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("logFiles is not a list".into())),
        None => return Err(invalid("logFiles is missing".into())),
    };
    if !json.contains_key("previousDigestSignature") {
        return Err(invalid("previousDigestSignature is missing".into()));
    }
    let previous_hash_algorithm = field.optional("previousDigestHashAlgorithm")?;
    if let Some(algorithm) = &previous_hash_algorithm
        && algorithm != HASH_ALGORITHM
    {
        return Err(invalid(format!(
            "previousDigestHashAlgorithm {algorithm:?} is not {HASH_ALGORITHM}"
        )));
    }
    Ok(Digest {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        account_id: field.optional("awsAccountId")?,
        start: field.time("digestStartTime")?,
        end: field.time("digestEndTime")?,
        end_text,
        s3_bucket: field.string("digestS3Bucket")?,
        s3_object: field.string("digestS3Object")?,
        public_key_fingerprint: field.string("digestPublicKeyFingerprint")?,
        declared_signature_algorithm: field.optional("digestSignatureAlgorithm")?,
        newest_event_time: field.optional_time("newestEventTime")?,
        oldest_event_time: field.optional_time("oldestEventTime")?,
        previous_bucket: field.optional("previousDigestS3Bucket")?,
        previous_object: field.optional("previousDigestS3Object")?,
        previous_hash: field.optional("previousDigestHashValue")?,
        previous_hash_algorithm,
        previous_signature: field.optional("previousDigestSignature")?,
        log_files,
        signature: signature.clone(),
        signature_algorithm: signature_algorithm.clone(),
        sha256,
    })
}

/// Typed access to a digest's JSON fields, each failure naming the file and field.
struct Fields<'a> {
    json: &'a Map<String, Value>,
    url: &'a str,
}

impl Fields<'_> {
    fn invalid(&self, why: String) -> Finding {
        Finding::DigestInvalidFormat {
            key: self.url.to_string(),
            why,
        }
    }

    fn optional(&self, name: &str) -> Result<Option<String>, Finding> {
        match self.json.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.invalid(format!("{name} is not a string"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, Finding> {
        self.optional(name)?
            .ok_or_else(|| self.invalid(format!("{name} is missing")))
    }

    fn optional_time(&self, name: &str) -> Result<Option<OffsetDateTime>, Finding> {
        match self.optional(name)? {
            None => Ok(None),
            Some(text) => times::parse_rfc3339(&text)
                .map(Some)
                .ok_or_else(|| self.invalid(format!("{name} {text:?} is not an RFC 3339 time"))),
        }
    }

    fn time(&self, name: &str) -> Result<OffsetDateTime, Finding> {
        self.optional_time(name)?
            .ok_or_else(|| self.invalid(format!("{name} is missing")))
    }
}

fn log_file(entry: &Value, index: usize, url: &str) -> Result<DigestLogFile, Finding> {
    let Some(json) = entry.as_object() else {
        return Err(Finding::DigestInvalidFormat {
            key: url.to_string(),
            why: format!("logFiles[{index}] is not an object"),
        });
    };
    let field = Fields { json, url };
    let named = |f: Finding| match f {
        Finding::DigestInvalidFormat { key, why } => Finding::DigestInvalidFormat {
            key,
            why: format!("logFiles[{index}].{why}"),
        },
        other => other,
    };
    let hash_algorithm = field.string("hashAlgorithm").map_err(named)?;
    if hash_algorithm != HASH_ALGORITHM {
        return Err(named(field.invalid(format!(
            "hashAlgorithm {hash_algorithm:?} is not {HASH_ALGORITHM}"
        ))));
    }
    Ok(DigestLogFile {
        bucket: field.string("s3Bucket").map_err(named)?,
        key: field.string("s3Object").map_err(named)?,
        hash_value: field.string("hashValue").map_err(named)?,
        hash_algorithm,
        newest_event_time: field.optional_time("newestEventTime").map_err(named)?,
        oldest_event_time: field.optional_time("oldestEventTime").map_err(named)?,
    })
}

/// Why a ListPublicKeys response does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    /// Not a JSON object with a `PublicKeyList` list.
    #[error("the ListPublicKeys response is not a JSON object with a PublicKeyList: {0}")]
    NotAList(String),
    /// One key's field is missing or malformed.
    #[error("the ListPublicKeys response's key {index} ({fingerprint}): {field} {why}")]
    Key {
        /// The key's position in `PublicKeyList`, from 0.
        index: usize,
        /// Its `Fingerprint`, or `?`.
        fingerprint: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// Read a ListPublicKeys response body as the JSON 1.1 API returns it:
/// `{"PublicKeyList":[{"Value":"<base64 PKCS#1 RSAPublicKey DER>","ValidityStartTime":<epoch
/// seconds>,"ValidityEndTime":<epoch seconds>,"Fingerprint":".."}],"NextToken":..}`.
pub fn parse_public_keys(body: &[u8]) -> Result<Vec<PublicKey>, KeyListError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| KeyListError::NotAList(e.to_string()))?;
    let list = value
        .get("PublicKeyList")
        .and_then(Value::as_array)
        .ok_or_else(|| KeyListError::NotAList("PublicKeyList is missing or not a list".into()))?;
    list.iter()
        .enumerate()
        .map(|(index, key)| {
            let fingerprint = key
                .get("Fingerprint")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let bad = |field: &'static str, why: &str| KeyListError::Key {
                index,
                fingerprint: fingerprint.clone(),
                field,
                why: why.to_string(),
            };
            if fingerprint == "?" {
                return Err(bad("Fingerprint", "is missing or not a string"));
            }
            let der = key
                .get("Value")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Value", "is missing or not a string"))
                .and_then(|text| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|e| bad("Value", &format!("is not base64: {e}")))
                })?;
            let at = |field: &'static str| {
                key.get(field)
                    .and_then(times::from_epoch)
                    .ok_or_else(|| bad(field, "is missing or not epoch seconds"))
            };
            Ok(PublicKey {
                fingerprint: fingerprint.clone(),
                der,
                valid_from: at("ValidityStartTime")?,
                valid_until: at("ValidityEndTime")?,
            })
        })
        .collect()
}
