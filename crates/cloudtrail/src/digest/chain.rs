//! The validation itself: each digest's own checks (validation.py's `_load_and_validate_digest`:
//! format, location, public key, signature), the chain walked newest to oldest (DigestTraverser:
//! a missing previous digest, a new chain after a gap), the links checked further than
//! validate-logs does (the previous digest's signature and content hash against what the newer
//! digest signed), and every log file of a trusted digest re-hashed (`_download_log`).

use std::collections::{BTreeMap, HashSet};

use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use time::{Duration, OffsetDateTime};

use super::read::{SIGNATURE_ALGORITHM, gunzip_sha256};
use super::{
    Digest, DigestKey, Finding, LogFileRef, PublicKey, TrailObject, Validation, digest_key_time,
    parse_digest, s3_url,
};

/// How long after a digest's end its public key may have become valid. CloudTrail signs a digest
/// after the hour it covers, possibly under a key rotated in meanwhile; validate-logs lists keys
/// to two hours past the end of the range for the same reason.
const SIGNING_GRACE: Duration = Duration::hours(2);

/// The string CloudTrail signs for a digest:
/// `{digestEndTime}\n{digestS3Bucket}/{digestS3Object}\n{hex SHA-256 of the uncompressed
/// digest}\n{previousDigestSignature, or "null" for the first digest of a chain}`.
pub fn string_to_sign(digest: &Digest) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        digest.end_text,
        digest.s3_bucket,
        digest.s3_object,
        digest.sha256,
        // "null" to match CloudTrail's Java implementation (validation.py says so).
        digest.previous_signature.as_deref().unwrap_or("null")
    )
}

/// What the caller read of one log file, for [`validate_hashed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRead {
    /// Not stored (the bucket has no such object).
    Missing,
    /// SHA-256 hex of its uncompressed content.
    Sha256(String),
    /// Not one whole gzip member.
    NotGzip,
}

impl LogRead {
    /// What a stored file's bytes (gzip) read as.
    pub fn of(bytes: &[u8]) -> LogRead {
        match gunzip_sha256(bytes) {
            Ok(sha256) => LogRead::Sha256(sha256),
            Err(_) => LogRead::NotGzip,
        }
    }
}

/// Validate a set of digests (any order) and the log files they list, as validate-logs does:
/// per chain (account, region, trail; backfill digests apart), newest to oldest, following
/// `previousDigestS3Object`. `logs(bucket, key)` returns a stored log file's bytes (gzip), or
/// `None` when it is missing.
///
/// The oldest digest of each chain in the set may name a previous digest that is not in the set:
/// that is where the set begins, not a finding. To have a deleted first digest caught, give the
/// window's start to [`validate_with`].
///
/// A digest that fails its own checks, or that the newer digest's signed link does not match, is
/// not trusted: its log files are neither fetched nor counted. Objects given twice (same bucket
/// and key) are validated once.
pub fn validate(
    digests: &[TrailObject],
    keys: &[PublicKey],
    logs: &dyn Fn(&str, &str) -> Option<Vec<u8>>,
) -> Validation {
    let read =
        |bucket: &str, key: &str| logs(bucket, key).map_or(LogRead::Missing, |b| LogRead::of(&b));
    validate_with(digests, keys, &read, None)
}

/// [`validate`], with each log file as the caller already read it (`logs(bucket, key)`).
pub fn validate_hashed(
    digests: &[TrailObject],
    keys: &[PublicKey],
    logs: &dyn Fn(&str, &str) -> LogRead,
) -> Validation {
    validate_with(digests, keys, logs, None)
}

/// [`validate_hashed`], where, given `since`, every digest whose key time is at or after it is
/// expected in the set: the oldest digest's previous digest is named missing unless its key time
/// is before `since` (validate-logs lists digests from the start time on, so a deleted first
/// digest of the window is caught).
pub fn validate_with(
    digests: &[TrailObject],
    keys: &[PublicKey],
    logs: &dyn Fn(&str, &str) -> LogRead,
    since: Option<OffsetDateTime>,
) -> Validation {
    run(digests, keys, logs, since)
}

/// One digest object in the validation.
struct Entry {
    url: String,
    /// The digest, when it parsed.
    digest: Option<Digest>,
    /// Its own failure (format, location, key, signature), if any.
    own: Option<Finding>,
    /// Its key time (else `digestEndTime`): the chain's order.
    time: Option<OffsetDateTime>,
}

fn run(
    objects: &[TrailObject],
    keys: &[PublicKey],
    logs: &dyn Fn(&str, &str) -> LogRead,
    since: Option<OffsetDateTime>,
) -> Validation {
    let mut seen = HashSet::new();
    let mut chains: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for object in objects {
        let url = object.url();
        if !seen.insert(url.clone()) {
            continue;
        }
        let (digest, own) = match parse_digest(object) {
            Ok(digest) => {
                let own = own_checks(&digest, keys);
                (Some(digest), own)
            }
            Err(finding) => (None, Some(finding)),
        };
        let key = DigestKey::parse(&object.key)
            .or_else(|| digest.as_ref().and_then(|d| DigestKey::parse(&d.s3_object)));
        let chain = key.as_ref().map_or_else(|| url.clone(), DigestKey::chain);
        let time = key.map(|k| k.end).or(digest.as_ref().map(|d| d.end));
        chains.entry(chain).or_default().push(Entry {
            url,
            digest,
            own,
            time,
        });
    }

    let mut out = Validation::default();
    let mut listed: Vec<(Option<OffsetDateTime>, String, Vec<LogFileRef>)> = Vec::new();
    for entries in chains.values_mut() {
        // Newest first; among equal times, by key.
        entries.sort_by(|a, b| (b.time, &b.url).cmp(&(a.time, &a.url)));
        walk(entries, logs, since, &mut out, &mut listed);
    }
    listed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.log_files = listed.into_iter().flat_map(|(_, _, refs)| refs).collect();
    out
}

/// A digest's own checks after it parsed, in validate-logs' order.
fn own_checks(digest: &Digest, keys: &[PublicKey]) -> Option<Finding> {
    let url = digest.url();
    if digest.s3_bucket != digest.bucket || digest.s3_object != digest.key {
        return Some(Finding::DigestMoved {
            key: url,
            recorded: s3_url(&digest.s3_bucket, &digest.s3_object),
        });
    }
    let candidates: Vec<&PublicKey> = keys
        .iter()
        .filter(|k| {
            k.fingerprint
                .eq_ignore_ascii_case(&digest.public_key_fingerprint)
                && k.valid_from <= digest.end + SIGNING_GRACE
                && k.valid_until >= digest.start
        })
        .collect();
    if candidates.is_empty() {
        return Some(Finding::PublicKeyNotFound {
            key: url,
            fingerprint: digest.public_key_fingerprint.clone(),
        });
    }
    if !digest
        .signature_algorithm
        .eq_ignore_ascii_case(SIGNATURE_ALGORITHM)
    {
        return Some(Finding::DigestInvalidFormat {
            key: url,
            why: format!(
                "signature-algorithm {:?} is not {SIGNATURE_ALGORITHM}",
                digest.signature_algorithm
            ),
        });
    }
    let Ok(signature) = hex::decode(&digest.signature) else {
        return Some(Finding::DigestSignatureInvalid { key: url });
    };
    let message = string_to_sign(digest);
    let verified = candidates.iter().any(|k| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &k.der)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    });
    if verified {
        None
    } else {
        Some(Finding::DigestSignatureInvalid { key: url })
    }
}

/// One chain, newest to oldest: each digest's own finding, its trust, its log files, then its
/// link to the digest before it.
fn walk(
    entries: &[Entry],
    logs: &dyn Fn(&str, &str) -> LogRead,
    since: Option<OffsetDateTime>,
    out: &mut Validation,
    listed: &mut Vec<(Option<OffsetDateTime>, String, Vec<LogFileRef>)>,
) {
    // Set when the newer digest's signed link does not match this one.
    let mut broken = vec![false; entries.len()];
    let present: HashSet<&str> = entries.iter().map(|e| e.url.as_str()).collect();
    for (i, entry) in entries.iter().enumerate() {
        if let Some(finding) = &entry.own {
            out.findings.push(finding.clone());
        }
        let trusted = entry.own.is_none() && !broken[i];
        let Some(digest) = &entry.digest else {
            out.digests_invalid += 1;
            continue;
        };
        if trusted {
            out.digests_valid += 1;
            out.first_start = Some(
                out.first_start
                    .map_or(digest.start, |t| t.min(digest.start)),
            );
            out.last_end = Some(out.last_end.map_or(digest.end, |t| t.max(digest.end)));
            let refs = check_logs(digest, &entry.url, logs, out);
            listed.push((entry.time, entry.url.clone(), refs));
        } else {
            out.digests_invalid += 1;
        }
        // A digest whose own checks failed says nothing trustworthy about its predecessor:
        // validate-logs moves on to the next older digest without following the link.
        if entry.own.is_some() {
            continue;
        }
        let older = entries.get(i + 1);
        match (&digest.previous_bucket, &digest.previous_object) {
            (Some(bucket), Some(key)) => {
                let named = s3_url(bucket, key);
                match older {
                    Some(older) if older.url == named => {
                        if let Some(why) = link_mismatch(digest, older) {
                            out.findings.push(Finding::ChainBroken {
                                key: entry.url.clone(),
                                previous: older.url.clone(),
                                why,
                            });
                            broken[i + 1] = true;
                        }
                    }
                    _ if present.contains(named.as_str()) => {
                        out.findings.push(Finding::ChainBroken {
                            key: entry.url.clone(),
                            previous: named,
                            why: match older {
                                Some(older) => format!(
                                    "the digest before it in time is {}, which the chain skips",
                                    older.url
                                ),
                                None => "it names a newer digest as its previous".into(),
                            },
                        });
                    }
                    _ => {
                        let expected = older.is_some()
                            || since.is_some_and(|since| {
                                digest_key_time(key).is_none_or(|time| time >= since)
                            });
                        if expected {
                            out.digests_invalid += 1;
                            out.findings.push(Finding::DigestMissing {
                                key: named,
                                referenced_by: entry.url.clone(),
                            });
                        }
                    }
                }
            }
            _ => {
                // The first digest of a chain: a gap when an earlier chain precedes it.
                if let Some(older) = older {
                    let from = older
                        .digest
                        .as_ref()
                        .map(|d| d.end)
                        .or(older.time)
                        .unwrap_or(digest.start);
                    out.findings.push(Finding::Gap {
                        from,
                        to: digest.start,
                    });
                }
            }
        }
    }
}

/// What differs between the newer digest's signed previous-digest fields and the older digest.
fn link_mismatch(newer: &Digest, older: &Entry) -> Option<String> {
    // An older digest that did not parse already has its own finding.
    let older_digest = older.digest.as_ref()?;
    let mut why = Vec::new();
    match &newer.previous_signature {
        None => why.push("previousDigestSignature is null".to_string()),
        Some(signature) if !signature.eq_ignore_ascii_case(&older_digest.signature) => {
            why.push(format!(
                "previousDigestSignature is not its signature metadata (signed {}, stored {})",
                short(signature),
                short(&older_digest.signature)
            ));
        }
        Some(_) => {}
    }
    match &newer.previous_hash {
        None => why.push("previousDigestHashValue is missing".to_string()),
        Some(hash) if !hash.eq_ignore_ascii_case(&older_digest.sha256) => why.push(format!(
            "previousDigestHashValue {hash} is not the SHA-256 of its content {}",
            older_digest.sha256
        )),
        Some(_) => {}
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join("; "))
    }
}

/// The first 16 hex digits of a signature, enough to tell two apart in a message.
fn short(signature: &str) -> String {
    let head: String = signature.chars().take(16).collect();
    if head.len() < signature.len() {
        format!("{head}...")
    } else {
        head
    }
}

/// Re-hash every log file a trusted digest lists; returns them as listed.
fn check_logs(
    digest: &Digest,
    url: &str,
    logs: &dyn Fn(&str, &str) -> LogRead,
    out: &mut Validation,
) -> Vec<LogFileRef> {
    let mut refs = Vec::with_capacity(digest.log_files.len());
    for log in &digest.log_files {
        refs.push(LogFileRef {
            bucket: log.bucket.clone(),
            key: log.key.clone(),
            sha256: log.hash_value.to_ascii_lowercase(),
        });
        let log_url = s3_url(&log.bucket, &log.key);
        let finding = if log.bucket != digest.bucket {
            Some(Finding::LogOtherBucket {
                key: log_url,
                digest: url.to_string(),
            })
        } else {
            match logs(&log.bucket, &log.key) {
                LogRead::Missing => Some(Finding::LogMissing {
                    key: log_url,
                    digest: url.to_string(),
                }),
                LogRead::NotGzip => Some(Finding::LogInvalidFormat { key: log_url }),
                LogRead::Sha256(actual) if !actual.eq_ignore_ascii_case(&log.hash_value) => {
                    Some(Finding::LogHashMismatch {
                        key: log_url,
                        expected: log.hash_value.clone(),
                        actual,
                    })
                }
                LogRead::Sha256(_) => None,
            }
        };
        match finding {
            Some(finding) => {
                out.logs_invalid += 1;
                out.findings.push(finding);
            }
            None => out.logs_valid += 1,
        }
    }
    refs
}
