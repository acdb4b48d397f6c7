//! Digest and log file validation as `aws cloudtrail validate-logs` does it, on a trail bucket
//! built here: hourly digests chained and signed under a 2048-bit RSA test key, each listing two
//! gzip log files; then each kind of tampering applied and named.
//!
//! The key is a fixture made with OpenSSL (`tests/fixtures/make-fixtures.sh`); the chains are
//! signed at test time with ring's `RsaKeyPair` (already a dependency: no RSA crate added for
//! tests). One digest signed by `openssl dgst -sha256 -sign` is verified too, so signatures are
//! not only checked against the library that made them.

use std::collections::BTreeMap;

use flate2::Compression;
use flate2::write::GzEncoder;
use forensnap_cloudtrail::digest::{
    self, Finding, LogFileRef, LogRead, PublicKey, TrailObject, Validation, parse_digest,
    parse_public_keys, read_log, validate, validate_hashed, validate_with,
};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use time::OffsetDateTime;
use time::macros::datetime;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const BUCKET: &str = "trail-bucket";
const ACCOUNT: &str = "111122223333";
const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip to memory");
    encoder.finish().expect("gzip to memory")
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

fn digest_key(region: &str, end: OffsetDateTime) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/{region}/2026/03/01/{ACCOUNT}_CloudTrail-Digest_{region}_org-trail_eu-west-1_{}.json.gz",
        stamp(end)
    )
}

fn url(key: &str) -> String {
    format!("s3://{BUCKET}/{key}")
}

/// A trail bucket: digests (in delivery order), log files, and CloudTrail's public keys.
struct World {
    signer: RsaKeyPair,
    digests: Vec<TrailObject>,
    logs: BTreeMap<String, Vec<u8>>,
    keys: Vec<PublicKey>,
}

impl World {
    fn new() -> World {
        let signer = RsaKeyPair::from_pkcs8(&fixture("test-key.pk8.der")).expect("test key");
        let keys = vec![PublicKey {
            fingerprint: FINGERPRINT.into(),
            der: signer.public().as_ref().to_vec(),
            valid_from: datetime!(2026-01-01 00:00:00 UTC),
            valid_until: datetime!(2027-01-01 00:00:00 UTC),
        }];
        World {
            signer,
            digests: Vec::new(),
            logs: BTreeMap::new(),
            keys,
        }
    }

    /// `hours` hourly digests in eu-west-1 from 2026-03-01T00:00Z, one chain.
    fn chain(hours: u32) -> World {
        let mut world = World::new();
        for hour in 0..hours {
            world.deliver("eu-west-1", hour, hour > 0);
        }
        world
    }

    fn sign(&self, message: &str) -> String {
        let mut signature = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        hex::encode(signature)
    }

    /// Deliver the digest of `hour` in `region` (two log files), linked to that region's latest
    /// digest when `linked`.
    fn deliver(&mut self, region: &str, hour: u32, linked: bool) {
        let previous = if linked {
            self.digests
                .iter()
                .rposition(|d| d.key.contains(&format!("/CloudTrail-Digest/{region}/")))
        } else {
            None
        };
        self.deliver_after(region, hour, previous);
    }

    /// Deliver the digest of `hour` in `region`, linked to `self.digests[previous]`.
    fn deliver_after(&mut self, region: &str, hour: u32, previous: Option<usize>) {
        let linked = previous.is_some();
        let start = datetime!(2026-03-01 00:00:00 UTC) + time::Duration::hours(hour.into());
        let end = start + time::Duration::hours(1);
        let key = digest_key(region, end);
        let mut log_files = Vec::new();
        for minute in [5u32, 35] {
            let at = start + time::Duration::minutes(minute.into());
            let log_key = format!(
                "AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/03/01/{ACCOUNT}_CloudTrail_{region}_{}_{region}{hour}{minute}.json.gz",
                &stamp(at)[..13]
            );
            let content = serde_json::to_vec(&json!({"Records": [{
                "eventVersion": "1.09", "eventID": format!("{region}-{hour}-{minute}"),
                "eventTime": rfc3339(at), "eventSource": "ec2.amazonaws.com",
                "eventName": "DescribeInstances", "awsRegion": region,
            }]}))
            .expect("json");
            log_files.push(json!({
                "s3Bucket": BUCKET, "s3Object": log_key, "hashValue": sha256(&content),
                "hashAlgorithm": "SHA-256", "newestEventTime": rfc3339(at), "oldestEventTime": rfc3339(at),
            }));
            self.logs.insert(log_key, gzip(&content));
        }
        let previous = previous.map(|i| &self.digests[i]);
        let (prev_key, prev_hash, prev_signature) = match previous {
            Some(p) => (
                json!(p.key),
                json!(sha256(&gunzip(&p.bytes))),
                json!(p.metadata["signature"]),
            ),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let content = json!({
            "awsAccountId": ACCOUNT,
            "digestStartTime": rfc3339(start),
            "digestEndTime": rfc3339(end),
            "digestS3Bucket": BUCKET,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": FINGERPRINT,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": rfc3339(start + time::Duration::minutes(35)),
            "oldestEventTime": rfc3339(start + time::Duration::minutes(5)),
            "previousDigestS3Bucket": if linked { json!(BUCKET) } else { Value::Null },
            "previousDigestS3Object": prev_key,
            "previousDigestHashValue": prev_hash,
            "previousDigestHashAlgorithm": if linked { json!("SHA-256") } else { Value::Null },
            "previousDigestSignature": prev_signature,
            "logFiles": log_files,
        });
        let content = serde_json::to_vec(&content).expect("json");
        let null = "null".to_string();
        let prev_signature = prev_signature_text(&content).unwrap_or(null);
        // CloudTrail's string to sign, written out here independently of the crate's.
        let to_sign = format!(
            "{}\n{BUCKET}/{key}\n{}\n{prev_signature}",
            rfc3339(end),
            sha256(&content)
        );
        let signature = self.sign(&to_sign);
        self.digests.push(TrailObject {
            bucket: BUCKET.into(),
            key,
            bytes: gzip(&content),
            metadata: BTreeMap::from([
                ("signature".to_string(), signature),
                (
                    "signature-algorithm".to_string(),
                    "SHA256withRSA".to_string(),
                ),
            ]),
        });
    }

    fn validate(&self) -> Validation {
        validate(&self.digests, &self.keys, &|bucket, key| {
            assert_eq!(bucket, BUCKET, "only the trail bucket is read");
            self.logs.get(key).cloned()
        })
    }

    fn digest_url(&self, index: usize) -> String {
        url(&self.digests[index].key)
    }

    /// Rewrite a digest's content (as someone with write access to the bucket would), keeping
    /// its metadata.
    fn edit_digest(&mut self, index: usize, edit: impl FnOnce(&mut Value)) {
        let object = &mut self.digests[index];
        let mut content: Value = serde_json::from_slice(&gunzip(&object.bytes)).expect("json");
        edit(&mut content);
        object.bytes = gzip(&serde_json::to_vec(&content).expect("json"));
    }

    fn log_key(&self, digest: usize, which: usize) -> String {
        let content: Value =
            serde_json::from_slice(&gunzip(&self.digests[digest].bytes)).expect("json");
        content["logFiles"][which]["s3Object"]
            .as_str()
            .expect("key")
            .to_string()
    }
}

fn prev_signature_text(content: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(content).ok()?;
    value["previousDigestSignature"]
        .as_str()
        .map(str::to_string)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn codes(validation: &Validation) -> Vec<(&'static str, Option<String>)> {
    validation
        .findings
        .iter()
        .map(|f| (f.code(), f.key().map(str::to_string)))
        .collect()
}

#[test]
fn an_untouched_chain_validates() {
    let world = World::chain(4);
    let v = world.validate();
    assert_eq!(v.findings, []);
    assert!(v.ok());
    assert_eq!(
        (
            v.digests_valid,
            v.digests_invalid,
            v.logs_valid,
            v.logs_invalid
        ),
        (4, 0, 8, 0)
    );
    assert_eq!(v.first_start, Some(datetime!(2026-03-01 00:00:00 UTC)));
    assert_eq!(v.last_end, Some(datetime!(2026-03-01 04:00:00 UTC)));
    // Every log file, oldest digest first, in each digest's order, with the digest's hash.
    assert_eq!(v.log_files.len(), 8);
    assert_eq!(v.log_files[0].key, world.log_key(0, 0));
    assert_eq!(v.log_files[7].key, world.log_key(3, 1));
    let content = gunzip(&world.logs[&world.log_key(2, 1)]);
    assert!(v.log_files.contains(&LogFileRef {
        bucket: BUCKET.into(),
        key: world.log_key(2, 1),
        sha256: sha256(&content),
    }));
}

#[test]
fn the_order_digests_are_given_in_does_not_matter() {
    let mut world = World::chain(4);
    let expected = world.validate();
    world.digests.reverse();
    world.digests.swap(0, 2);
    assert_eq!(world.validate(), expected);
    // An object read twice is validated once.
    world.digests.push(world.digests[1].clone());
    assert_eq!(world.validate(), expected);
}

#[test]
fn the_first_digest_signs_null_as_its_previous_signature() {
    let world = World::chain(1);
    let digest = parse_digest(&world.digests[0]).expect("parse");
    assert_eq!(digest.previous_signature, None);
    assert!(digest::string_to_sign(&digest).ends_with("\nnull"));
    assert_eq!(world.validate().digests_valid, 1);
    assert!(world.validate().findings.is_empty());
}

#[test]
fn a_digest_signed_by_openssl_verifies() {
    // Made by make-fixtures.sh: `openssl dgst -sha256 -sign` over the string to sign, and the
    // key as `openssl rsa -RSAPublicKey_out -outform DER` writes it.
    let key = "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/03/01/111122223333_CloudTrail-Digest_eu-west-1_org-trail_eu-west-1_20260301T010000Z.json.gz";
    let object = TrailObject {
        bucket: BUCKET.into(),
        key: key.into(),
        bytes: fixture("openssl-digest.json.gz"),
        metadata: BTreeMap::from([
            (
                "signature".to_string(),
                String::from_utf8(fixture("openssl-digest.sig.hex")).expect("hex"),
            ),
            (
                "signature-algorithm".to_string(),
                "SHA256withRSA".to_string(),
            ),
        ]),
    };
    let der = fixture("test-key.rsapublickey.der");
    let world = World::new();
    assert_eq!(
        der,
        world.signer.public().as_ref(),
        "OpenSSL's RSAPublicKey DER is ring's public key encoding (PKCS#1)"
    );
    let keys = [PublicKey {
        der,
        ..world.keys[0].clone()
    }];
    let v = validate(std::slice::from_ref(&object), &keys, &|_, _| None);
    assert_eq!(v.findings, []);
    assert_eq!(v.digests_valid, 1);
    // One digit of the content changed and the signature no longer verifies.
    let content = String::from_utf8(fixture("openssl-digest.json")).expect("utf-8");
    let content = content.replace(
        r#""awsAccountId":"111122223333""#,
        r#""awsAccountId":"111122223334""#,
    );
    let changed = TrailObject {
        bytes: gzip(content.as_bytes()),
        ..object
    };
    let v = validate(&[changed], &keys, &|_, _| None);
    assert_eq!(codes(&v), [("digest-signature-invalid", Some(url(key)))]);
}

#[test]
fn a_wrong_signature_is_named_and_its_logs_not_trusted() {
    let mut world = World::chain(4);
    let signature = world.digests[2].metadata.get_mut("signature").expect("sig");
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    signature.replace_range(0..1, flipped);
    let v = world.validate();
    assert_eq!(
        codes(&v),
        [
            // The newer digest signed the original signature.
            ("chain-broken", Some(world.digest_url(3))),
            ("digest-signature-invalid", Some(world.digest_url(2))),
        ]
    );
    assert!(!v.ok());
    assert_eq!((v.digests_valid, v.digests_invalid), (3, 1));
    assert_eq!(
        (v.logs_valid, v.logs_invalid),
        (6, 0),
        "its two logs are not counted"
    );
    assert!(!v.log_files.iter().any(|l| l.key == world.log_key(2, 0)));
    assert_eq!(
        v.findings[1].to_string(),
        format!(
            "Digest file {} INVALID: signature verification failed",
            world.digest_url(2)
        )
    );
    let Finding::ChainBroken { previous, why, .. } = &v.findings[0] else {
        panic!("chain broken")
    };
    assert_eq!(previous, &world.digest_url(2));
    assert!(why.contains("previousDigestSignature"), "{why}");
}

#[test]
fn a_digest_whose_content_changed_is_named_by_its_signature_and_the_chain() {
    let mut world = World::chain(4);
    // Someone hides a changed log file by rewriting its hash in the digest.
    world.edit_digest(1, |d| {
        d["logFiles"][0]["hashValue"] = json!("00".repeat(32))
    });
    let v = world.validate();
    assert_eq!(
        codes(&v),
        [
            ("chain-broken", Some(world.digest_url(2))),
            ("digest-signature-invalid", Some(world.digest_url(1))),
        ]
    );
    let Finding::ChainBroken { why, .. } = &v.findings[0] else {
        panic!("chain broken")
    };
    assert!(why.contains("previousDigestHashValue"), "{why}");
    assert_eq!(
        (v.digests_valid, v.digests_invalid, v.logs_valid),
        (3, 1, 6)
    );
}

#[test]
fn a_moved_digest_is_named() {
    let mut world = World::chain(3);
    let original = world.digests[1].key.clone();
    world.digests[1].key = original.replace("AWSLogs/", "copied/AWSLogs/");
    let v = world.validate();
    let moved = v
        .findings
        .iter()
        .find(|f| f.code() == "digest-moved")
        .expect("moved");
    assert_eq!(
        moved.to_string(),
        format!(
            "Digest file {} INVALID: has been moved from its original location {}",
            url(&world.digests[1].key),
            url(&original)
        )
    );
    // And where it should be, the newer digest finds nothing.
    assert!(v.findings.contains(&Finding::DigestMissing {
        key: url(&original),
        referenced_by: world.digest_url(2)
    }));
    // Moved to another bucket, same key: moved as well.
    let mut world = World::chain(1);
    world.digests[0].bucket = "other-bucket".into();
    let v = validate(&world.digests, &world.keys, &|_, _| None);
    assert_eq!(codes(&v)[0].0, "digest-moved");
}

#[test]
fn a_digest_without_its_public_key_is_named() {
    let mut world = World::chain(2);
    world.keys[0].fingerprint = "ffffffffffffffffffffffffffffffff".into();
    let v = world.validate();
    assert_eq!(
        codes(&v),
        [
            ("public-key-not-found", Some(world.digest_url(1))),
            ("public-key-not-found", Some(world.digest_url(0))),
        ]
    );
    assert_eq!(
        v.findings[0].to_string(),
        format!(
            "Digest file {} INVALID: public key not found for fingerprint {FINGERPRINT}",
            world.digest_url(1)
        )
    );
    assert_eq!((v.digests_valid, v.logs_valid), (0, 0));
    // The right fingerprint, but a key that was not valid for the digest's period.
    let mut world = World::chain(1);
    world.keys[0].valid_until = datetime!(2026-02-28 00:00:00 UTC);
    assert_eq!(codes(&world.validate())[0].0, "public-key-not-found");
    // One valid from shortly after the digest's end (signed after its hour) is accepted.
    let mut world = World::chain(1);
    world.keys[0].valid_from = datetime!(2026-03-01 01:30:00 UTC);
    assert!(world.validate().ok());
}

#[test]
fn a_deleted_middle_digest_is_named_missing() {
    let mut world = World::chain(4);
    let deleted = world.digests.remove(1);
    let v = world.validate();
    assert_eq!(
        v.findings,
        [Finding::DigestMissing {
            key: url(&deleted.key),
            referenced_by: world.digest_url(1),
        }]
    );
    assert_eq!(
        v.findings[0].to_string(),
        format!(
            "Digest file {} INVALID: not found (the previous digest of {})",
            url(&deleted.key),
            world.digest_url(1)
        )
    );
    // validate-logs counts a missing digest as invalid; the rest still validate.
    assert_eq!((v.digests_valid, v.digests_invalid), (3, 1));
    assert_eq!(v.logs_valid, 6);
}

#[test]
fn a_deleted_first_digest_is_named_only_when_the_window_expects_it() {
    let mut world = World::chain(3);
    let deleted = world.digests.remove(0);
    // Without a window, the set begins where it begins.
    assert!(world.validate().ok());
    let read = |_: &str, key: &str| {
        world
            .logs
            .get(key)
            .map_or(LogRead::Missing, |b| LogRead::of(b))
    };
    let v = validate_with(
        &world.digests,
        &world.keys,
        &read,
        Some(datetime!(2026-03-01 00:00:00 UTC)),
    );
    assert_eq!(codes(&v), [("digest-missing", Some(url(&deleted.key)))]);
    // A window starting after the deleted digest's end does not expect it.
    let v = validate_with(
        &world.digests,
        &world.keys,
        &read,
        Some(datetime!(2026-03-01 01:30:00 UTC)),
    );
    assert!(v.ok());
}

#[test]
fn swapped_signatures_are_named() {
    let mut world = World::chain(4);
    let second = world.digests[1].metadata["signature"].clone();
    let third = world.digests[2].metadata["signature"].clone();
    world.digests[1].metadata.insert("signature".into(), third);
    world.digests[2].metadata.insert("signature".into(), second);
    let v = world.validate();
    assert_eq!(
        codes(&v),
        [
            ("chain-broken", Some(world.digest_url(3))),
            ("digest-signature-invalid", Some(world.digest_url(2))),
            ("digest-signature-invalid", Some(world.digest_url(1))),
        ]
    );
    assert_eq!(
        (v.digests_valid, v.digests_invalid, v.logs_valid),
        (2, 2, 4)
    );
}

#[test]
fn a_changed_log_file_is_named_with_both_hashes() {
    let mut world = World::chain(2);
    let key = world.log_key(1, 0);
    let mut content = gunzip(&world.logs[&key]);
    let expected = sha256(&content);
    content.extend_from_slice(b" ");
    world.logs.insert(key.clone(), gzip(&content));
    let v = world.validate();
    assert_eq!(
        v.findings,
        [Finding::LogHashMismatch {
            key: url(&key),
            expected: expected.clone(),
            actual: sha256(&content),
        }]
    );
    assert!(v.findings[0].to_string().starts_with(&format!(
        "Log file {} INVALID: hash value doesn't match",
        url(&key)
    )));
    assert_eq!((v.logs_valid, v.logs_invalid), (3, 1));
    assert_eq!(
        (v.digests_valid, v.digests_invalid),
        (2, 0),
        "the digests are fine"
    );
}

#[test]
fn a_missing_log_file_is_named_with_its_digest() {
    let mut world = World::chain(2);
    let key = world.log_key(0, 1);
    world.logs.remove(&key);
    let v = world.validate();
    assert_eq!(
        v.findings,
        [Finding::LogMissing {
            key: url(&key),
            digest: world.digest_url(0),
        }]
    );
    assert_eq!((v.logs_valid, v.logs_invalid), (3, 1));
}

#[test]
fn a_log_file_that_is_not_gzip_is_named() {
    let mut world = World::chain(1);
    let plain = world.log_key(0, 0);
    let trailing = world.log_key(0, 1);
    let content = gunzip(&world.logs[&plain]);
    world.logs.insert(plain.clone(), content);
    // A whole gzip member followed by more data: validate-logs refuses it too.
    world
        .logs
        .get_mut(&trailing)
        .expect("log")
        .extend_from_slice(b"more");
    let v = world.validate();
    assert_eq!(
        codes(&v),
        [
            ("log-invalid-format", Some(url(&plain))),
            ("log-invalid-format", Some(url(&trailing))),
        ]
    );
    assert_eq!(v.logs_invalid, 2);
    // An empty object is not gzip either.
    world.logs.insert(plain.clone(), Vec::new());
    assert_eq!(codes(&world.validate())[0].0, "log-invalid-format");
}

#[test]
fn a_log_file_in_another_bucket_is_named_not_fetched() {
    let mut world = World::new();
    world.deliver("eu-west-1", 0, false);
    // Rebuild the digest with a log in another bucket, signed as CloudTrail would have.
    let object = &world.digests[0];
    let mut content: Value = serde_json::from_slice(&gunzip(&object.bytes)).expect("json");
    content["logFiles"][0]["s3Bucket"] = json!("elsewhere");
    let content = serde_json::to_vec(&content).expect("json");
    let to_sign = format!(
        "2026-03-01T01:00:00Z\n{BUCKET}/{}\n{}\nnull",
        object.key,
        sha256(&content)
    );
    let signature = world.sign(&to_sign);
    let object = &mut world.digests[0];
    object.bytes = gzip(&content);
    object.metadata.insert("signature".into(), signature);
    let log_key = world.log_key(0, 0);
    let v = world.validate();
    assert_eq!(
        v.findings,
        [Finding::LogOtherBucket {
            key: format!("s3://elsewhere/{log_key}"),
            digest: world.digest_url(0),
        }]
    );
    assert!(!v.ok());
    assert_eq!((v.digests_valid, v.logs_valid, v.logs_invalid), (1, 1, 1));
}

#[test]
fn a_chain_that_skips_a_digest_is_named() {
    let mut world = World::new();
    world.deliver("eu-west-1", 0, false);
    world.deliver("eu-west-1", 1, true);
    // Hour 2 names hour 0 as its previous digest: hour 1 is not in the chain.
    world.deliver_after("eu-west-1", 2, Some(0));
    let v = world.validate();
    assert_eq!(codes(&v), [("chain-broken", Some(world.digest_url(2)))]);
    let Finding::ChainBroken { previous, why, .. } = &v.findings[0] else {
        panic!("chain broken")
    };
    assert_eq!(previous, &world.digest_url(0));
    assert!(why.contains(&world.digest_url(1)), "{why}");
}

#[test]
fn a_new_chain_after_a_gap_is_informational() {
    let mut world = World::new();
    world.deliver("eu-west-1", 0, false);
    world.deliver("eu-west-1", 1, true);
    // Logging stopped for two hours; CloudTrail starts a new chain.
    world.deliver("eu-west-1", 4, false);
    world.deliver("eu-west-1", 5, true);
    let v = world.validate();
    assert_eq!(
        v.findings,
        [Finding::Gap {
            from: datetime!(2026-03-01 02:00:00 UTC),
            to: datetime!(2026-03-01 04:00:00 UTC),
        }]
    );
    assert!(v.ok(), "a gap is not a failure");
    assert!(!v.findings[0].is_failure());
    assert_eq!(v.findings[0].key(), None);
    assert_eq!(
        v.findings[0].to_string(),
        "No log files were delivered by CloudTrail between 2026-03-01T02:00:00Z and 2026-03-01T04:00:00Z"
    );
    assert_eq!(v.digests_valid, 4);
}

#[test]
fn each_region_is_its_own_chain() {
    let mut world = World::new();
    for hour in 0..3 {
        world.deliver("eu-west-1", hour, hour > 0);
        world.deliver("us-east-1", hour, hour > 0);
    }
    let v = world.validate();
    assert_eq!(v.findings, []);
    assert_eq!((v.digests_valid, v.logs_valid), (6, 12));
    // A region's deleted digest is named in that region only.
    let deleted = world.digests.remove(3); // us-east-1, hour 1
    let v = world.validate();
    assert_eq!(codes(&v), [("digest-missing", Some(url(&deleted.key)))]);
}

#[test]
fn digests_that_do_not_read_are_named() {
    let world = World::chain(1);
    let base = world.digests[0].clone();
    let with = |bytes: Vec<u8>| TrailObject {
        bytes,
        ..base.clone()
    };
    let content: Value = serde_json::from_slice(&gunzip(&base.bytes)).expect("json");
    let without = |field: &str| {
        let mut c = content.clone();
        c.as_object_mut().expect("object").remove(field);
        with(gzip(&serde_json::to_vec(&c).expect("json")))
    };
    for (object, why) in [
        (with(b"plain".to_vec()), "not gzip"),
        (with(gzip(b"{not json")), "not JSON"),
        (with(gzip(b"[]")), "not a JSON object"),
        (without("digestEndTime"), "digestEndTime is missing"),
        (
            without("previousDigestSignature"),
            "previousDigestSignature is missing",
        ),
        (without("logFiles"), "logFiles is missing"),
    ] {
        let finding = parse_digest(&object).expect_err(why);
        assert!(
            matches!(&finding, Finding::DigestInvalidFormat { why: w, .. } if w.contains(why)),
            "{why}: {finding}"
        );
        assert!(finding.to_string().contains("INVALID: invalid format"));
        let v = validate(&[object], &world.keys, &|_, _| None);
        assert_eq!((v.digests_valid, v.digests_invalid), (0, 1));
    }
    let mut unsigned = base.clone();
    unsigned.metadata.remove("signature-algorithm");
    assert_eq!(
        parse_digest(&unsigned),
        Err(Finding::DigestSignatureMissing {
            key: url(&base.key)
        })
    );
    let mut other_algorithm = base.clone();
    other_algorithm
        .metadata
        .insert("signature-algorithm".into(), "SHA1withRSA".into());
    let v = validate(&[other_algorithm], &world.keys, &|_, _| None);
    assert_eq!(codes(&v)[0].0, "digest-invalid-format");
    let mut not_hex = base;
    not_hex.metadata.insert("signature".into(), "zz".into());
    let v = validate(&[not_hex], &world.keys, &|_, _| None);
    assert_eq!(codes(&v)[0].0, "digest-signature-invalid");
}

#[test]
fn a_digest_reads_into_its_documented_fields() {
    let world = World::chain(2);
    let d = parse_digest(&world.digests[1]).expect("parse");
    assert_eq!(d.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(d.start, datetime!(2026-03-01 01:00:00 UTC));
    assert_eq!(d.end, datetime!(2026-03-01 02:00:00 UTC));
    assert_eq!(d.end_text, "2026-03-01T02:00:00Z");
    assert_eq!(
        (d.s3_bucket.as_str(), d.s3_object.as_str()),
        (BUCKET, world.digests[1].key.as_str())
    );
    assert_eq!(
        d.previous_object.as_deref(),
        Some(world.digests[0].key.as_str())
    );
    assert_eq!(
        d.previous_hash.as_deref(),
        Some(sha256(&gunzip(&world.digests[0].bytes)).as_str())
    );
    assert_eq!(d.previous_hash_algorithm.as_deref(), Some("SHA-256"));
    assert_eq!(
        d.previous_signature.as_deref(),
        Some(world.digests[0].metadata["signature"].as_str())
    );
    assert_eq!(d.log_files().len(), 2);
    assert_eq!(
        d.log_files[0].newest_event_time,
        Some(datetime!(2026-03-01 01:05:00 UTC))
    );
    assert_eq!(d.sha256, sha256(&gunzip(&world.digests[1].bytes)));
    assert_eq!(
        digest::digest_key_time(&d.key),
        Some(datetime!(2026-03-01 02:00:00 UTC))
    );
}

#[test]
fn hashed_logs_validate_as_bytes_do() {
    let mut world = World::chain(3);
    let key = world.log_key(1, 1);
    world.logs.insert(key, gzip(b"{\"Records\":[]}"));
    world.logs.remove(&world.log_key(2, 0));
    let read = |_: &str, key: &str| {
        world
            .logs
            .get(key)
            .map_or(LogRead::Missing, |b| LogRead::of(b))
    };
    assert_eq!(
        validate_hashed(&world.digests, &world.keys, &read),
        world.validate()
    );
}

#[test]
fn log_files_read_into_their_records() {
    let world = World::chain(1);
    let key = world.log_key(0, 0);
    let log = read_log(&world.logs[&key]).expect("log");
    assert_eq!(log.sha256, sha256(&gunzip(&world.logs[&key])));
    assert_eq!(log.records.len(), 1);
    assert_eq!(log.records[0]["eventID"], "eu-west-1-0-5");
    assert!(matches!(
        read_log(b"plain"),
        Err(digest::LogError::NotGzip(_))
    ));
    let error = read_log(&gzip(b"{\"records\":[]}")).expect_err("no Records");
    assert!(error.to_string().contains("Records is missing"), "{error}");
}

#[test]
fn findings_serialise_with_their_code() {
    let finding = Finding::LogMissing {
        key: "s3://b/k".into(),
        digest: "s3://b/d".into(),
    };
    assert_eq!(
        serde_json::to_value(&finding).expect("json"),
        json!({"code": "log-missing", "key": "s3://b/k", "digest": "s3://b/d"})
    );
    let gap = Finding::Gap {
        from: datetime!(2026-03-01 02:00:00 UTC),
        to: datetime!(2026-03-01 04:00:00 UTC),
    };
    let value = serde_json::to_value(&gap).expect("json");
    assert_eq!(
        value,
        json!({"code": "gap", "from": "2026-03-01T02:00:00Z", "to": "2026-03-01T04:00:00Z"})
    );
    assert_eq!(serde_json::from_value::<Finding>(value).expect("back"), gap);
    let v = World::chain(1).validate();
    let back: Validation =
        serde_json::from_value(serde_json::to_value(&v).expect("json")).expect("back");
    assert_eq!(back, v);
}

#[test]
fn public_keys_read_from_a_list_public_keys_response() {
    let der = fixture("test-key.rsapublickey.der");
    use base64::Engine as _;
    let body = json!({"PublicKeyList": [{
        "Value": base64::engine::general_purpose::STANDARD.encode(&der),
        "ValidityStartTime": 1767225600, "ValidityEndTime": 1.7988e9,
        "Fingerprint": FINGERPRINT,
    }]});
    let keys = parse_public_keys(&serde_json::to_vec(&body).expect("json")).expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].der, der);
    assert_eq!(keys[0].fingerprint, FINGERPRINT);
    assert_eq!(keys[0].valid_from, datetime!(2026-01-01 00:00:00 UTC));
    let bad = json!({"PublicKeyList": [{"Value": "%%%", "ValidityStartTime": 1, "ValidityEndTime": 2, "Fingerprint": "f"}]});
    let error = parse_public_keys(&serde_json::to_vec(&bad).expect("json")).expect_err("bad");
    assert!(
        error.to_string().contains("key 0 (f): Value is not base64"),
        "{error}"
    );
}
