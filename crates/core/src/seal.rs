//! Seals: ECDSA P-256 signatures by the forensic account's KMS key over evidence bags and over
//! signed checkpoints of the custody chain, and their verification by anyone holding the public
//! key, with forensnap or without it.
//!
//! Two things are signed, both with the KMS key (ECC_NIST_P256, ECDSA_SHA_256: the signature is
//! over SHA-256 of the exact bytes, DER-encoded), so `openssl dgst -sha256 -verify` checks either:
//!
//! * every evidence bag's `tagmanifest-sha256.txt`, as `tagmanifest-sha256.txt.sig` beside it,
//!   with the public key in the bag as [`PUBLIC_KEY_PATH`] and the auditor's instructions as
//!   [`VERIFY_PATH`] ([`verify_md`]). The tag manifest hashes every other tag file, manifests
//!   included, so the one signature covers every byte of the bag.
//! * the custody chain, by [`Checkpoint`]s in the manner of CloudTrail's digest files: each names
//!   its own location, the chain head it vouches for, the previous checkpoint (key, SHA-256 and
//!   signature) and every evidence item sealed so far, and is signed as stored (`NNNNNNNN.json`
//!   and `NNNNNNNN.json.sig`). The events are Object-Locked and hash-chained already
//!   ([`crate::custody`]); the signature adds who sealed them: whoever can rewrite the bucket
//!   cannot produce a signature that verifies with the KMS key. [`verify_checkpoints`] walks the
//!   checkpoints newest to oldest and reports every problem, not just the first.
//!
//! The [`Signer`] trait is the only way to sign: KMS in production (`forensnap-aws`), an in-memory
//! key in tests (`MemorySigner`, feature `memory-signer`). Nothing here performs I/O.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use crate::CaseId;
use crate::custody::{Event, GENESIS, events_prefix, sha256_hex};

/// Suffix of a signature file: the DER signature of `X` is stored as `X.sig`.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// Public key file in a bag root and beside checkpoints.
pub const PUBLIC_KEY_PATH: &str = "signing-key.pem";
/// Instructions file in a bag root (a tag file, so it is listed in tagmanifest-sha256.txt).
pub const VERIFY_PATH: &str = "VERIFY.md";
/// Version tag of the checkpoint format, stored in every checkpoint.
pub const CHECKPOINT_SCHEMA: &str = "forensnap.checkpoint/1";

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// Why a signature, key or checkpoint does not check out (messages name the thing and what is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text is not a PEM `PUBLIC KEY` block.
    #[error("public key PEM is not usable: {why}")]
    Pem {
        /// What is wrong with it.
        why: String,
    },
    /// The key is not an ECDSA P-256 public key in SubjectPublicKeyInfo DER.
    #[error(
        "public key is not an ECDSA P-256 SubjectPublicKeyInfo (what KMS GetPublicKey returns for an ECC_NIST_P256 key): {why}"
    )]
    PublicKey {
        /// What is wrong with it.
        why: String,
    },
    /// The signature bytes are not a DER ECDSA signature.
    #[error(
        "signature is not a DER-encoded ECDSA P-256 signature (what KMS Sign returns for ECDSA_SHA_256): {why}"
    )]
    SignatureEncoding {
        /// What is wrong with it.
        why: String,
    },
    /// A well-formed signature that does not verify.
    #[error(
        "ECDSA P-256 signature does not verify with the public key of SHA-256 {public_key_sha256}: the signed bytes or the signature were changed, or another key made it"
    )]
    Mismatch {
        /// [`fingerprint`] of the key tried.
        public_key_sha256: String,
    },
    /// The bytes are not a checkpoint.
    #[error("custody checkpoint is not readable as {CHECKPOINT_SCHEMA} JSON: {why}")]
    Checkpoint {
        /// Parser message.
        why: String,
    },
    /// A checkpoint of another format version.
    #[error("custody checkpoint has schema {found:?}; this forensnap reads {CHECKPOINT_SCHEMA}")]
    Schema {
        /// The schema found.
        found: String,
    },
}

/// A failed signing call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// Signs with the forensic account's key (KMS in production; memory in tests).
pub trait Signer: Send + Sync {
    /// The key's id (a KMS key ARN).
    fn key_id(&self) -> &str;
    /// The public key, DER SubjectPublicKeyInfo (what KMS GetPublicKey returns).
    fn public_key_der(&self) -> &[u8];
    /// DER-encoded ECDSA P-256 signature over SHA-256(message).
    fn sign(
        &self,
        message: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SignError>> + Send;
}

/// PEM armor of an SPKI DER public key, as `openssl pkey -pubin` writes it: `-----BEGIN PUBLIC
/// KEY-----`, the base64 of the DER in lines of 64 characters, `-----END PUBLIC KEY-----`, each
/// line ending in LF.
pub fn public_key_pem(spki_der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(spki_der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    // Base64 is ASCII, so 64-byte chunks are 64-character lines.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

/// The SPKI DER inside a PEM `PUBLIC KEY` block (LF or CRLF; text before the block and after it
/// is ignored, as OpenSSL does). The key must be an ECDSA P-256 public key: anything else could
/// not have verified a KMS ECC_NIST_P256 signature, and a private key has no business here.
pub fn parse_public_key_pem(pem: &str) -> Result<Vec<u8>, SealError> {
    let pem_error = |why: String| SealError::Pem { why };
    let mut lines = pem.lines().map(str::trim);
    loop {
        let line = lines.next().ok_or_else(|| {
            pem_error(format!(
                "there is no {PEM_BEGIN:?} line (is it the file `openssl pkey -pubin` writes?)"
            ))
        })?;
        if line == PEM_BEGIN {
            break;
        }
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            return Err(pem_error(format!(
                "it holds a {label:?} block, not a \"PUBLIC KEY\" (SubjectPublicKeyInfo) block"
            )));
        }
    }
    let mut body = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        if line == PEM_END {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(pem_error(format!(
                "header line {line:?} inside the block; a PUBLIC KEY block has none"
            )));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(pem_error(format!("the block has no {PEM_END:?} line")));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| pem_error(format!("the block is not valid base64: {e}")))?;
    decode_public_key(&der)?;
    Ok(der)
}

/// Hex SHA-256 of the SPKI DER: what `openssl pkey -pubin -in k.pem -outform DER | sha256sum` and
/// `aws kms get-public-key ... | base64 -d | sha256sum` print for the same key.
pub fn fingerprint(spki_der: &[u8]) -> String {
    sha256_hex(spki_der)
}

/// Check a DER ECDSA P-256 signature over SHA-256(`message`) with the SPKI DER public key, as
/// `openssl dgst -sha256 -verify` does. High-S signatures are accepted: KMS does not normalise S
/// and OpenSSL accepts both.
pub fn verify_signature(
    spki_der: &[u8],
    message: &[u8],
    der_signature: &[u8],
) -> Result<(), SealError> {
    let key = decode_public_key(spki_der)?;
    let signature =
        Signature::from_der(der_signature).map_err(|_| SealError::SignatureEncoding {
            why: format!(
                "{} bytes that are not a DER SEQUENCE of two INTEGERs r and s in 1..n",
                der_signature.len()
            ),
        })?;
    key.verify(message, &signature)
        .map_err(|_| SealError::Mismatch {
            public_key_sha256: fingerprint(spki_der),
        })
}

fn decode_public_key(spki_der: &[u8]) -> Result<VerifyingKey, SealError> {
    VerifyingKey::from_public_key_der(spki_der).map_err(|e| SealError::PublicKey {
        why: format!("{} bytes of DER that do not decode: {e}", spki_der.len()),
    })
}

/// The chain position a checkpoint vouches for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainPosition {
    /// Sequence number of the last event sealed (as [`crate::custody::ChainHead::seq`]).
    pub seq: u64,
    /// SHA-256 of that event's stored bytes (as [`crate::custody::ChainHead::sha256`]).
    pub sha256: String,
}

/// What a checkpoint records of the one before it, so deleting, replacing or re-signing an
/// earlier checkpoint breaks every later one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousCheckpoint {
    /// Its S3 key.
    pub key: String,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
    /// Its DER signature, standard base64.
    pub signature: String,
}

/// One evidence item a checkpoint seals: its bag and the SHA-256 of the bag's tag manifest
/// (which hashes every other file of the bag).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedItem {
    /// Evidence item id.
    pub id: String,
    /// S3 prefix of its bag.
    pub prefix: String,
    /// SHA-256 of its `tagmanifest-sha256.txt`.
    pub tagmanifest_sha256: String,
}

/// A signed checkpoint of a case's custody chain, stored at [`checkpoint_key`] with its DER
/// signature at the same key plus [`SIGNATURE_SUFFIX`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`CHECKPOINT_SCHEMA`].
    pub schema: String,
    /// The case.
    pub case: String,
    /// Position among the case's checkpoints, from 1.
    pub number: u64,
    /// When it was made, RFC 3339 UTC with milliseconds, as custody events write it.
    pub time: String,
    /// The bucket it is stored in.
    pub bucket: String,
    /// Its own key: a copy stored anywhere else says where it belongs.
    pub key: String,
    /// The last event it seals; earlier events are sealed through their hash links.
    pub chain: ChainPosition,
    /// The checkpoint before it (`None` for number 1).
    pub previous: Option<PreviousCheckpoint>,
    /// Every evidence item sealed so far, not only the new ones.
    pub items: Vec<SealedItem>,
    /// The KMS key that signs it.
    pub signing_key_arn: String,
    /// [`fingerprint`] of that key's public key.
    pub public_key_sha256: String,
}

impl Checkpoint {
    /// The exact bytes stored and signed: pretty JSON with fields in declaration order, then a
    /// newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a checkpoint always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Parse stored bytes; refuses unknown fields and other schemas.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, SealError> {
        let checkpoint: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| SealError::Checkpoint { why: e.to_string() })?;
        if checkpoint.schema != CHECKPOINT_SCHEMA {
            return Err(SealError::Schema {
                found: checkpoint.schema,
            });
        }
        Ok(checkpoint)
    }
}

/// The S3 key of checkpoint `number` of `case`, under `prefix`, beside the events' folder and
/// sorted by number when listed: `{prefix}/cases/{case}/custody/checkpoints/{number:08}.json`.
pub fn checkpoint_key(prefix: &str, case: &CaseId, number: u64) -> String {
    format!("{}{number:08}.json", checkpoints_prefix(prefix, case))
}

/// The S3 prefix holding every checkpoint of `case` (and their signatures).
pub fn checkpoints_prefix(prefix: &str, case: &CaseId) -> String {
    // Derived from the events' prefix so both always normalise `prefix` the same way.
    let events = events_prefix(prefix, case);
    let custody = events.strip_suffix("events/").unwrap_or(&events);
    format!("{custody}checkpoints/")
}

/// One thing wrong with a case's checkpoints, named precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong: an S3 key, or the trusted public key.
    pub what: String,
    /// What is wrong with it, and what that means.
    pub problem: String,
}

impl Finding {
    fn new(what: impl Into<String>, problem: impl Into<String>) -> Self {
        Finding {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.problem)
    }
}

/// A stored checkpoint object as listed: its key, its bytes, and the bytes of its `.sig`
/// (`None` when the signature object is missing).
pub type CheckpointObject = (String, Vec<u8>, Option<Vec<u8>>);

/// A stored event as the checks need it.
struct StoredEvent<'a> {
    key: &'a str,
    sha256: String,
    prev_sha256: String,
}

/// A readable stored checkpoint.
struct ReadCheckpoint<'a> {
    key: &'a str,
    bytes: &'a [u8],
    signature: Option<&'a [u8]>,
    /// Why the signature does not check out (`None`: it verifies with the trusted key).
    unsigned: Option<String>,
    checkpoint: Checkpoint,
}

/// Verify a case's checkpoints against its events, walking newest to oldest like CloudTrail's
/// validator, and report every problem found rather than stopping at the first.
///
/// `events` are `(key, bytes)` of every stored event object, `checkpoints` are `(key, bytes,
/// signature bytes or None when the .sig is missing)`, both in key order; `public_key` is the
/// SPKI DER the auditor trusts (compare its [`fingerprint`] with `aws kms get-public-key`).
///
/// Reported: a checkpoint that is unreadable, unsigned or whose signature does not verify; one
/// whose `key` differs from where it was found (moved or copied) or of another case; missing
/// numbers (a deleted checkpoint); `previous` not matching the actual previous checkpoint's key,
/// SHA-256 or signature; a chain position that does not match the stored event of that seq
/// (edited event) or names an event no longer stored (deleted or truncated events), or goes
/// backwards; an evidence item dropped by a later checkpoint; `public_key_sha256` not the
/// trusted key's fingerprint. Events are checked too: unreadable, of another case, stored twice
/// or under another seq's key, missing from the middle, or not hashing to what the next event
/// links to (an edit of an event sealed only through the links). Last, every event after the
/// latest checkpoint whose signature verifies is reported as not covered by a signed
/// checkpoint.
pub fn verify_checkpoints(
    case: &CaseId,
    events: &[(String, Vec<u8>)],
    checkpoints: &[CheckpointObject],
    public_key: &[u8],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let trusted = fingerprint(public_key);
    if let Err(e) = decode_public_key(public_key) {
        findings.push(Finding::new(
            "the trusted public key",
            format!("{e}; no signature can be checked with it"),
        ));
    }

    let stored = read_events(case, events, &mut findings);
    let highest_event = stored.keys().next_back().copied().unwrap_or(0);

    let read = read_checkpoints(case, checkpoints, public_key, &mut findings);
    let newest = read.keys().next_back().copied().unwrap_or(0);
    // A checkpoint's folder, to name where a missing one should be.
    let folder = read
        .values()
        .next()
        .map(|c| folder_of(c.key).to_string())
        .unwrap_or_default();

    for (&number, current) in read.iter().rev() {
        check_checkpoint(
            case,
            current,
            read.get(&(number - 1)),
            &stored,
            highest_event,
            &trusted,
            &mut findings,
        );
        // The numbers missing below this one, as one run: a forged number far ahead must not
        // make the walk count through every number in between.
        let lower = read
            .range(..number)
            .next_back()
            .map_or(0, |(&lower, _)| lower);
        if number - lower > 1 {
            let (first, last) = (lower + 1, number - 1);
            let finding = if first == last {
                let key = current
                    .checkpoint
                    .previous
                    .as_ref()
                    .map_or_else(|| format!("{folder}{last:08}.json"), |p| p.key.clone());
                Finding::new(
                    key,
                    format!(
                        "checkpoint {last} of case {case} is missing (checkpoints up to \
                         {newest} exist): it was deleted"
                    ),
                )
            } else {
                Finding::new(
                    folder.clone(),
                    format!(
                        "checkpoints {first} to {last} of case {case} are missing (checkpoints \
                         up to {newest} exist): they were deleted"
                    ),
                )
            };
            findings.push(finding);
        }
    }

    check_events(&stored, &mut findings);

    // The newest checkpoint whose signature verifies: events after it are not sealed.
    let sealed = read
        .values()
        .filter(|c| c.unsigned.is_none())
        .max_by_key(|c| (c.checkpoint.chain.seq, c.checkpoint.number));
    let through = sealed.map_or(0, |c| c.checkpoint.chain.seq);
    for (seq, event) in stored.range(through.saturating_add(1)..) {
        let problem = match sealed {
            Some(c) => format!(
                "event {seq} is not covered by a signed checkpoint: the latest signed checkpoint, \
                 {} ({}), seals the chain through event {through}",
                c.checkpoint.number, c.key
            ),
            None => format!(
                "event {seq} is not covered by a signed checkpoint: case {case} has no checkpoint \
                 whose signature verifies with the trusted key"
            ),
        };
        findings.push(Finding::new(event.key, problem));
    }
    findings
}

/// Parse the stored events by seq, reporting the unreadable, foreign, misplaced and repeated.
fn read_events<'a>(
    case: &CaseId,
    events: &'a [(String, Vec<u8>)],
    findings: &mut Vec<Finding>,
) -> BTreeMap<u64, StoredEvent<'a>> {
    let mut stored: BTreeMap<u64, StoredEvent<'a>> = BTreeMap::new();
    for (key, bytes) in events {
        let event: Event = match serde_json::from_slice(bytes) {
            Ok(event) => event,
            Err(e) => {
                findings.push(Finding::new(
                    key,
                    format!("is not a readable custody event: {e}"),
                ));
                continue;
            }
        };
        let seq = event.seq;
        if seq == 0 {
            findings.push(Finding::new(
                key,
                "is event 0, but custody events are numbered from 1",
            ));
            continue;
        }
        if &event.case != case {
            findings.push(Finding::new(
                key,
                format!(
                    "is event {seq} of case {}, stored among the events of case {case}",
                    event.case
                ),
            ));
            continue;
        }
        if let Some(first) = stored.get(&seq) {
            findings.push(Finding::new(
                key,
                format!(
                    "is a second event {seq} (the first is {}): an event was copied or forged",
                    first.key
                ),
            ));
            continue;
        }
        if !at_file(key, &format!("{seq:08}.json")) {
            findings.push(Finding::new(
                key,
                format!("is event {seq} but is not stored as {seq:08}.json: it was moved"),
            ));
        }
        stored.insert(
            seq,
            StoredEvent {
                key,
                sha256: sha256_hex(bytes),
                prev_sha256: event.prev_sha256,
            },
        );
    }
    stored
}

/// Parse the stored checkpoints by number and check each signature; reports the unreadable and
/// the repeated (with their signature problems), keeps the others' for [`check_checkpoint`].
fn read_checkpoints<'a>(
    case: &CaseId,
    checkpoints: &'a [CheckpointObject],
    public_key: &[u8],
    findings: &mut Vec<Finding>,
) -> BTreeMap<u64, ReadCheckpoint<'a>> {
    let mut read: BTreeMap<u64, ReadCheckpoint<'a>> = BTreeMap::new();
    for (key, bytes, signature) in checkpoints {
        let unsigned = match signature {
            None => Some(format!(
                "its signature {key}{SIGNATURE_SUFFIX} is missing: the checkpoint is not sealed \
                 (the run stopped before signing it, or the signature was deleted)"
            )),
            Some(signature) => verify_signature(public_key, bytes, signature)
                .err()
                .map(|e| format!("its signature {key}{SIGNATURE_SUFFIX} does not check out: {e}")),
        };
        // Checkpoints that take no place in the walk get all their findings here.
        let mut set_aside = |problem: String| {
            findings.extend(unsigned.clone().map(|unsigned| Finding::new(key, unsigned)));
            findings.push(Finding::new(key, problem));
        };
        let checkpoint = match Checkpoint::from_bytes(bytes) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                set_aside(e.to_string());
                continue;
            }
        };
        let number = checkpoint.number;
        if number == 0 {
            set_aside("is checkpoint 0, but checkpoints are numbered from 1".to_string());
            continue;
        }
        if let Some(first) = read.get(&number) {
            set_aside(format!(
                "is a second checkpoint {number} of case {case} (the first is {}): a \
                     checkpoint was copied or forged",
                first.key
            ));
            continue;
        }
        read.insert(
            number,
            ReadCheckpoint {
                key,
                bytes,
                signature: signature.as_deref(),
                unsigned,
                checkpoint,
            },
        );
    }
    read
}

/// Everything about one checkpoint: signature (checked when read), location, case, key
/// fingerprint, chain position, link to the previous checkpoint and the items it carries over.
fn check_checkpoint(
    case: &CaseId,
    current: &ReadCheckpoint<'_>,
    previous: Option<&ReadCheckpoint<'_>>,
    stored: &BTreeMap<u64, StoredEvent<'_>>,
    highest_event: u64,
    trusted: &str,
    findings: &mut Vec<Finding>,
) {
    let key = current.key;
    let checkpoint = &current.checkpoint;
    let number = checkpoint.number;
    let mut report = |problem: String| findings.push(Finding::new(key, problem));

    if let Some(unsigned) = &current.unsigned {
        report(unsigned.clone());
    }

    if checkpoint.case != case.as_str() {
        report(format!(
            "is a checkpoint of case {}, stored among the checkpoints of case {case}",
            checkpoint.case
        ));
    }
    if checkpoint.key != key {
        report(format!(
            "says it is stored at {} but was found at {key}: it was moved or copied",
            checkpoint.key
        ));
    } else if !at_file(key, &format!("{number:08}.json")) {
        report(format!(
            "is checkpoint {number} but is not stored as {number:08}.json"
        ));
    }
    if checkpoint.public_key_sha256 != trusted {
        report(format!(
            "names signing key {} with public key SHA-256 {}, but the trusted public key's \
             SHA-256 is {trusted}: it was sealed with another key, or the wrong key is trusted",
            checkpoint.signing_key_arn, checkpoint.public_key_sha256
        ));
    }

    let chain = &checkpoint.chain;
    let seq = chain.seq;
    if seq == 0 {
        if chain.sha256 != GENESIS {
            report(format!(
                "seals an empty custody chain (event 0) but gives SHA-256 {} instead of {GENESIS}",
                chain.sha256
            ));
        }
    } else {
        match stored.get(&seq) {
            Some(event) if event.sha256 == chain.sha256 => {}
            Some(event) => report(format!(
                "seals the custody chain at event {seq} with SHA-256 {}, but the stored event \
                 {seq} ({}) hashes {}: event {seq} was edited or replaced after it was sealed",
                chain.sha256, event.key, event.sha256
            )),
            None if seq > highest_event => report(format!(
                "seals the custody chain through event {seq}, but the highest stored event is \
                 {highest_event}: events after {highest_event} were deleted (the chain was \
                 truncated)"
            )),
            None => report(format!(
                "seals the custody chain at event {seq}, but no event {seq} is stored: it was \
                 deleted"
            )),
        }
    }

    match (&checkpoint.previous, previous) {
        (None, _) if number == 1 => {}
        (Some(named), _) if number == 1 => report(format!(
            "is checkpoint 1 but names a previous checkpoint {}: earlier checkpoints were \
             deleted, or it was renumbered",
            named.key
        )),
        (None, _) => report(format!(
            "is checkpoint {number} but names no previous checkpoint: it was forged or renumbered"
        )),
        // The missing previous checkpoint is reported as a gap.
        (Some(_), None) => {}
        (Some(named), Some(actual)) => {
            let before = number - 1;
            if named.key != actual.key {
                report(format!(
                    "names {} as checkpoint {before}, but checkpoint {before} was found at {}",
                    named.key, actual.key
                ));
            }
            let actual_sha256 = sha256_hex(actual.bytes);
            if named.sha256 != actual_sha256 {
                report(format!(
                    "records checkpoint {before} as hashing {}, but {} hashes {actual_sha256}: \
                     checkpoint {before} was edited or replaced",
                    named.sha256, actual.key
                ));
            }
            if let Some(signature) = actual.signature {
                let actual_signature = base64::engine::general_purpose::STANDARD.encode(signature);
                if named.signature != actual_signature {
                    report(format!(
                        "records another signature of checkpoint {before} than \
                         {}{SIGNATURE_SUFFIX} holds: that signature was replaced",
                        actual.key
                    ));
                }
            }
            if seq < actual.checkpoint.chain.seq {
                report(format!(
                    "seals the custody chain at event {seq}, before checkpoint {before}'s event \
                     {}: the chain went backwards",
                    actual.checkpoint.chain.seq
                ));
            }
            for item in &actual.checkpoint.items {
                if !checkpoint.items.iter().any(|kept| kept.id == item.id) {
                    report(format!(
                        "drops evidence item {} ({}) that checkpoint {before} sealed: every \
                         checkpoint lists every item sealed so far",
                        item.id, item.prefix
                    ));
                }
            }
        }
    }
}

/// Events missing from the middle of the chain, and links that do not match the bytes of the
/// event before (an edit that only the following event's link reveals).
fn check_events(stored: &BTreeMap<u64, StoredEvent<'_>>, findings: &mut Vec<Finding>) {
    let highest = stored.keys().next_back().copied().unwrap_or(0);
    let folder = stored
        .values()
        .next()
        .map(|e| folder_of(e.key).to_string())
        .unwrap_or_default();
    // Missing seqs as runs between stored ones (a forged seq far ahead is one run, not a loop).
    let mut lower = 0;
    for &seq in stored.keys() {
        if seq - lower > 1 {
            let (first, last) = (lower + 1, seq - 1);
            findings.push(if first == last {
                Finding::new(
                    format!("{folder}{last:08}.json"),
                    format!(
                        "custody event {last} is missing (events up to {highest} are stored): it \
                         was deleted"
                    ),
                )
            } else {
                Finding::new(
                    folder.clone(),
                    format!(
                        "custody events {first} to {last} are missing (events up to {highest} \
                         are stored): they were deleted"
                    ),
                )
            });
        }
        lower = seq;
    }
    for (&seq, event) in stored {
        if seq <= 1 {
            if event.prev_sha256 != GENESIS {
                findings.push(Finding::new(
                    event.key,
                    format!(
                        "is event {seq} but links to a previous event hashing {}: earlier events \
                         were deleted, or it was renumbered",
                        event.prev_sha256
                    ),
                ));
            }
            continue;
        }
        let Some(before) = stored.get(&(seq - 1)) else {
            continue;
        };
        if event.prev_sha256 != before.sha256 {
            findings.push(Finding::new(
                before.key,
                format!(
                    "custody event {} hashes {}, but event {seq} ({}) links to {}: event {} was \
                     edited or replaced",
                    seq - 1,
                    before.sha256,
                    event.key,
                    event.prev_sha256,
                    seq - 1
                ),
            ));
        }
    }
}

/// The key up to and including its last '/'.
fn folder_of(key: &str) -> &str {
    key.rfind('/').map_or("", |slash| &key[..=slash])
}

/// Whether `key`'s last component is exactly `file`.
fn at_file(key: &str, file: &str) -> bool {
    key.strip_suffix(file)
        .is_some_and(|folder| folder.is_empty() || folder.ends_with('/'))
}

/// What VERIFY.md says about one item.
#[derive(Debug, Clone, Copy)]
pub struct VerifyGuide<'a> {
    /// Evidence item id.
    pub item_id: &'a str,
    /// Case id.
    pub case: &'a str,
    /// What the item holds (`volume`, `instance-record`, ...).
    pub kind: &'a str,
    /// ARN of the KMS key that signed the tag manifest.
    pub signing_key_arn: &'a str,
    /// [`fingerprint`] of its public key.
    pub public_key_sha256: &'a str,
    /// SHA-256 of the raw disk image, for volumes.
    pub image_sha256: Option<&'a str>,
    /// Blocks layout: `rebuild.sh` rebuilds the image.
    pub rebuild: bool,
    /// Raw layout: the image's path in the bag (`data/disk.raw`).
    pub raw_image_path: Option<&'a str>,
}

/// `VERIFY.md`: for someone who does not trust forensnap, the exact commands, run from the bag
/// root, that check the bag, its signature and (for volumes) the disk image, and what each
/// proves.
pub fn verify_md(guide: &VerifyGuide<'_>) -> String {
    let VerifyGuide {
        item_id,
        case,
        kind,
        signing_key_arn,
        public_key_sha256,
        image_sha256,
        rebuild,
        raw_image_path,
    } = *guide;
    let arn = shell_word(signing_key_arn);
    let mut md = format!(
        "# Verifying evidence item `{item_id}`

Case `{case}`, evidence item `{item_id}` ({kind}), preserved by forensnap.

You do not need forensnap, or to trust it, to check this evidence: every step below uses common
tools (`sha256sum` from GNU coreutils, OpenSSL, the AWS CLI and `bagit` from PyPI), and each must
pass. Run the commands from the bag root, the directory that holds this file and `bagit.txt`.

## 1. Every file is the one that was sealed

```sh
sha256sum -c tagmanifest-sha256.txt
sha256sum -c manifest-sha256.txt
```

Every line must end in `OK`.

## 2. The bag is a complete, valid BagIt bag

```sh
python3 -m pip install bagit
bagit.py --validate .
```

It must report the bag valid.

## 3. The tag manifest is signed by the case's KMS key

`signing-key.pem` is the public half of the KMS key `{signing_key_arn}`. Its fingerprint:

```sh
openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum
```

must print `{public_key_sha256}  -`. AWS itself must give the same (with credentials allowed
`kms:GetPublicKey` on the key):

```sh
aws kms get-public-key --key-id {arn} --query PublicKey --output text | base64 -d | sha256sum
```

Then the signature:

```sh
openssl dgst -sha256 -verify signing-key.pem -signature tagmanifest-sha256.txt.sig tagmanifest-sha256.txt
```

must print `Verified OK`.
"
    );
    let image_hash = image_sha256.map_or_else(
        || "the SHA-256 in `data/image.sha256`".to_string(),
        |hash| format!("`{hash}`"),
    );
    let streamed = image_sha256.map_or_else(
        || "the SHA-256 in `data/image.sha256`, followed by `  -`".to_string(),
        |hash| format!("`{hash}  -`"),
    );
    let has_image = if rebuild {
        md.push_str(&format!(
            "
## 4. The disk image is the volume's

The payload keeps only the blocks EBS listed for the snapshot; `rebuild.sh` (POSIX `sh` and `dd`)
rebuilds the raw image, blocks not listed as zeros. With room for the whole volume:

```sh
sh rebuild.sh disk.raw && sha256sum -c data/image.sha256
```

must print `disk.raw: OK`. Without the disk space, stream the image instead:

```sh
sh rebuild.sh - | sha256sum
```

must print {streamed}.
"
        ));
        true
    } else if let Some(path) = raw_image_path {
        md.push_str(&format!(
            "
## 4. The disk image is the volume's

The payload holds the raw image itself, `{path}`, zero runs included:

```sh
sha256sum -c data/image.sha256
```

must print `{path}: OK`: the image hashes {image_hash}.
"
        ));
        true
    } else {
        false
    };
    md.push_str(
        "
## What each step proves

* Step 1: `tagmanifest-sha256.txt` lists the SHA-256 of every tag file (`bag-info.txt`,
  `manifest-sha256.txt`, this file and the rest), and `manifest-sha256.txt` that of every payload
  file under `data/`; together they cover every byte of the evidence.
* Step 2: an independent BagIt implementation agrees, and finds no payload file missing or
  unlisted (`Payload-Oxum` in `bag-info.txt` gives their total size and count).
* Step 3: the signature ties the tag manifest, and through it every file, to the KMS key, whose
  private half never leaves KMS: only a principal allowed `kms:Sign` on that key could have made
  it. The fingerprint checks make sure `signing-key.pem` is that key and not one put in its place.
",
    );
    if has_image {
        md.push_str(
            "* Step 4: the image hash equals `sha256sum` of the original raw disk, zero runs
  included (what hashing a `dd` image of the whole volume gives), so it can be compared with any
  other image of the volume.
",
        );
    }
    md.push_str(&format!(
        "
The case's signed custody checkpoints (`cases/{case}/custody/checkpoints/`) list this item with
the SHA-256 of its `tagmanifest-sha256.txt`; `sha256sum tagmanifest-sha256.txt` must print it.

The `acquisition/` folder, where present, is forensnap's resume state for an interrupted upload:
it is not evidence, is not listed in the manifests and plays no part in these checks.
"
    ));
    md
}

/// A word for sh: as it is when it holds only characters sh takes literally, else single-quoted.
fn shell_word(value: &str) -> String {
    if !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '.' | '-' | '+' | '@' | '=')
        })
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

#[cfg(any(test, feature = "memory-signer"))]
pub use memory::MemorySigner;

#[cfg(any(test, feature = "memory-signer"))]
mod memory {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    use sha2::{Digest, Sha256};

    use super::{SignError, Signer};

    /// A P-256 key held in memory, derived from a one-byte seed: the same seed always gives the
    /// same key, so tests can sign and check without KMS. Never for evidence.
    #[derive(Clone)]
    pub struct MemorySigner {
        key: SigningKey,
        key_id: String,
        public_key: Vec<u8>,
    }

    impl std::fmt::Debug for MemorySigner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // The private key stays out of test output.
            f.debug_struct("MemorySigner")
                .field("key_id", &self.key_id)
                .finish_non_exhaustive()
        }
    }

    impl MemorySigner {
        /// The key of `seed`, reporting `key_id` as its id.
        pub fn from_seed(seed: u8, key_id: &str) -> Self {
            // [seed; 32] itself is not always a valid scalar (0 and values >= n are not), so
            // the scalar is SHA-256 of it, rehashed in the (never seen) case that is invalid.
            let mut bytes = Sha256::digest([seed; 32]);
            let key = loop {
                match SigningKey::from_bytes(&bytes) {
                    Ok(key) => break key,
                    Err(_) => bytes = Sha256::digest(bytes),
                }
            };
            let public_key = p256::PublicKey::from(key.verifying_key())
                .to_public_key_der()
                .expect("a P-256 public key always encodes")
                .into_vec();
            MemorySigner {
                key,
                key_id: key_id.to_string(),
                public_key,
            }
        }
    }

    impl Signer for MemorySigner {
        fn key_id(&self) -> &str {
            &self.key_id
        }

        fn public_key_der(&self) -> &[u8] {
            &self.public_key
        }

        fn sign(
            &self,
            message: &[u8],
        ) -> impl std::future::Future<Output = Result<Vec<u8>, SignError>> + Send {
            let signature: p256::ecdsa::Signature = self.key.sign(message);
            let der = signature.to_der().as_bytes().to_vec();
            std::future::ready(Ok(der))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::path::{Path, PathBuf};
    use std::pin::pin;
    use std::process::Command;
    use std::task::{Context, Poll, Waker};

    use time::OffsetDateTime;

    use super::*;
    use crate::custody::{Actor, ChainHead, EventDraft, event_key};

    const ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    /// Run a future that is ready at once (the memory signer's).
    fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the memory signer never waits"),
        }
    }

    fn signer() -> MemorySigner {
        MemorySigner::from_seed(1, ARN)
    }

    #[test]
    fn signatures_verify_and_any_change_is_refused() {
        let signer = signer();
        let message = b"0123  bag-info.txt\n".to_vec();
        let signature = now(signer.sign(&message)).expect("signed");
        verify_signature(signer.public_key_der(), &message, &signature).expect("verifies");
        assert_eq!(signer.key_id(), ARN);
        assert_eq!(
            MemorySigner::from_seed(1, "other").public_key_der(),
            signer.public_key_der(),
            "the seed alone fixes the key"
        );

        for at in [0, message.len() - 1] {
            let mut changed = message.clone();
            changed[at] ^= 1;
            let err = verify_signature(signer.public_key_der(), &changed, &signature)
                .expect_err("changed message");
            assert!(matches!(err, SealError::Mismatch { .. }), "{err}");
        }
        // The last byte is in s: still DER, no longer the signature.
        let mut changed = signature.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(matches!(
            verify_signature(signer.public_key_der(), &message, &changed),
            Err(SealError::Mismatch { .. })
        ));
        // The first byte is the SEQUENCE tag: no longer DER.
        let mut changed = signature.clone();
        changed[0] ^= 1;
        let err =
            verify_signature(signer.public_key_der(), &message, &changed).expect_err("not DER");
        assert!(matches!(err, SealError::SignatureEncoding { .. }), "{err}");

        let other = MemorySigner::from_seed(2, ARN);
        let err = verify_signature(other.public_key_der(), &message, &signature)
            .expect_err("another key");
        assert!(
            err.to_string()
                .contains(&fingerprint(other.public_key_der())),
            "{err}"
        );
    }

    #[test]
    fn high_s_signatures_as_kms_makes_them_verify() {
        let signer = signer();
        let message = b"tag manifest";
        let der = now(signer.sign(message)).expect("signed");
        let signature = Signature::from_der(&der).expect("DER");
        let (r, s) = signature.split_scalars();
        let flipped = Signature::from_scalars(r, -s).expect("valid scalars");
        // Exactly one of (r, s) and (r, n - s) is high-S; both are valid ECDSA signatures.
        assert_ne!(flipped, signature);
        let flipped_der = flipped.to_der().as_bytes().to_vec();
        verify_signature(signer.public_key_der(), message, &flipped_der).expect("high or low S");
    }

    #[test]
    fn keys_round_trip_through_pem_and_other_keys_are_refused() {
        let der = signer().public_key_der().to_vec();
        assert_eq!(
            der.len(),
            91,
            "P-256 SPKI, uncompressed point, as KMS returns"
        );
        let pem = public_key_pem(&der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
        assert_eq!(parse_public_key_pem(&pem).expect("round trip"), der);
        let crlf = format!("comment\r\n{}", pem.replace('\n', "\r\n"));
        assert_eq!(parse_public_key_pem(&crlf).expect("CRLF"), der);
        assert_eq!(fingerprint(&der), sha256_hex(&der));
        assert_eq!(fingerprint(&der).len(), 64);

        let private = pem.replace("PUBLIC KEY", "EC PRIVATE KEY");
        let err = parse_public_key_pem(&private).expect_err("private key");
        assert!(err.to_string().contains("EC PRIVATE KEY"), "{err}");
        assert!(matches!(
            parse_public_key_pem("no key here"),
            Err(SealError::Pem { .. })
        ));
        let cut = pem.replace("-----END PUBLIC KEY-----\n", "");
        assert!(matches!(
            parse_public_key_pem(&cut),
            Err(SealError::Pem { .. })
        ));
        let garbled = pem.replacen('M', "!", 1);
        assert!(matches!(
            parse_public_key_pem(&garbled),
            Err(SealError::Pem { .. })
        ));

        // An Ed25519 SPKI is a well-formed public key of another algorithm.
        let mut ed25519 = hex::decode("302a300506032b6570032100").expect("hex");
        ed25519.extend([7u8; 32]);
        let err = parse_public_key_pem(&public_key_pem(&ed25519)).expect_err("not P-256");
        assert!(matches!(err, SealError::PublicKey { .. }), "{err}");
        assert!(matches!(
            verify_signature(&ed25519, b"m", &[0x30, 0]),
            Err(SealError::PublicKey { .. })
        ));
    }

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "forensnap-seal-{name}-{}-{}",
                std::process::id(),
                OffsetDateTime::now_utc().unix_timestamp_nanos()
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            TempDir(path)
        }
        fn write(&self, name: &str, bytes: &[u8]) {
            std::fs::write(self.0.join(name), bytes).expect("write");
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run(dir: &Path, script: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{script}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn openssl_verifies_our_signatures_and_we_verify_openssl_s() {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("openssl is not on PATH: interop not checked");
            return;
        }
        let dir = TempDir::new("openssl");
        let signer = signer();
        let message = b"a tag manifest\nwith lines\n".repeat(100);
        let signature = now(signer.sign(&message)).expect("signed");
        dir.write(
            PUBLIC_KEY_PATH,
            public_key_pem(signer.public_key_der()).as_bytes(),
        );
        dir.write("msg", &message);
        dir.write("msg.sig", &signature);

        let verified = run(
            dir.path(),
            "openssl dgst -sha256 -verify signing-key.pem -signature msg.sig msg",
        );
        assert_eq!(verified.trim(), "Verified OK");
        let printed = run(
            dir.path(),
            "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum",
        );
        assert_eq!(
            printed,
            format!("{}  -\n", fingerprint(signer.public_key_der()))
        );

        // And the other way: a key and signature made by OpenSSL.
        run(
            dir.path(),
            "openssl ecparam -name prime256v1 -genkey -noout -out private.pem \
             && openssl pkey -in private.pem -pubout -out public.pem \
             && openssl dgst -sha256 -sign private.pem -out theirs.sig msg",
        );
        let read = |name: &str| std::fs::read(dir.path().join(name)).expect("read");
        let pem = String::from_utf8(read("public.pem")).expect("PEM is text");
        let theirs = parse_public_key_pem(&pem).expect("OpenSSL's public key");
        verify_signature(&theirs, &message, &read("theirs.sig")).expect("OpenSSL's signature");
        assert!(verify_signature(signer.public_key_der(), &message, &read("theirs.sig")).is_err());
    }

    #[test]
    fn keys_are_derived_from_the_events_prefix() {
        let case = CaseId::parse("IR-7").expect("case");
        assert_eq!(
            checkpoint_key("/evidence/", &case, 3),
            "evidence/cases/IR-7/custody/checkpoints/00000003.json"
        );
        assert_eq!(
            checkpoints_prefix("", &case),
            "cases/IR-7/custody/checkpoints/"
        );
        assert_eq!(
            folder_of(&checkpoint_key("p", &case, 1)),
            checkpoints_prefix("p", &case)
        );
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_other_schemas() {
        let checkpoint = Checkpoint {
            schema: CHECKPOINT_SCHEMA.into(),
            case: "IR-1".into(),
            number: 1,
            time: "2026-11-23T20:35:48.360Z".into(),
            bucket: "b".into(),
            key: "k".into(),
            chain: ChainPosition {
                seq: 1,
                sha256: GENESIS.into(),
            },
            previous: None,
            items: Vec::new(),
            signing_key_arn: ARN.into(),
            public_key_sha256: GENESIS.into(),
        };
        let bytes = checkpoint.to_bytes();
        assert!(bytes.ends_with(b"}\n"));
        assert_eq!(Checkpoint::from_bytes(&bytes).expect("parses"), checkpoint);
        assert_eq!(
            Checkpoint::from_bytes(&bytes).expect("parses").to_bytes(),
            bytes
        );
        let other = String::from_utf8(bytes.clone())
            .expect("utf8")
            .replace(CHECKPOINT_SCHEMA, "forensnap.checkpoint/9");
        assert!(matches!(
            Checkpoint::from_bytes(other.as_bytes()),
            Err(SealError::Schema { .. })
        ));
        assert!(matches!(
            Checkpoint::from_bytes(b"{}"),
            Err(SealError::Checkpoint { .. })
        ));
    }

    struct Case {
        id: CaseId,
        events: Vec<(String, Vec<u8>)>,
        checkpoints: Vec<CheckpointObject>,
        signer: MemorySigner,
    }

    impl Case {
        fn findings(&self) -> Vec<Finding> {
            verify_checkpoints(
                &self.id,
                &self.events,
                &self.checkpoints,
                self.signer.public_key_der(),
            )
        }
    }

    fn append_events(case: &CaseId, events: &mut Vec<(String, Vec<u8>)>, count: u64) {
        let actor = Actor {
            arn: "arn:aws:iam::123456789012:role/forensnap".into(),
            operator: "Jane".into(),
        };
        let mut head = events
            .last()
            .map(|(_, bytes)| {
                let event: Event = serde_json::from_slice(bytes).expect("event");
                event.head()
            })
            .unwrap_or_else(ChainHead::empty);
        for _ in 0..count {
            let draft = EventDraft::new("x").after([format!("snap-{}", head.seq + 1)]);
            let event = Event::next(
                draft,
                case,
                &head,
                &actor,
                Some("test"),
                OffsetDateTime::UNIX_EPOCH,
            );
            head = event.head();
            events.push((event_key("ev", case, event.seq), event.to_bytes()));
        }
    }

    /// Six events; checkpoint 1 seals events 1-2 and item a, 2 seals 1-4 and a, b, 3 seals 1-6
    /// and a, b, c.
    fn sealed_case() -> Case {
        let id = CaseId::parse("IR-1").expect("case");
        let signer = signer();
        let mut events = Vec::new();
        append_events(&id, &mut events, 6);
        let mut checkpoints: Vec<CheckpointObject> = Vec::new();
        for number in 1..=3u64 {
            let seq = number * 2;
            let (_, event_bytes) = &events[seq as usize - 1];
            let previous = checkpoints
                .last()
                .map(|(key, bytes, signature)| PreviousCheckpoint {
                    key: key.clone(),
                    sha256: sha256_hex(bytes),
                    signature: base64::engine::general_purpose::STANDARD
                        .encode(signature.as_deref().expect("signed")),
                });
            let key = checkpoint_key("ev", &id, number);
            let checkpoint = Checkpoint {
                schema: CHECKPOINT_SCHEMA.into(),
                case: id.to_string(),
                number,
                time: "2026-11-23T20:35:48.360Z".into(),
                bucket: "forensic-evidence".into(),
                key: key.clone(),
                chain: ChainPosition {
                    seq,
                    sha256: sha256_hex(event_bytes),
                },
                previous,
                items: ["a", "b", "c"][..number as usize]
                    .iter()
                    .map(|item| SealedItem {
                        id: (*item).into(),
                        prefix: format!("ev/cases/IR-1/evidence/{item}/"),
                        tagmanifest_sha256: sha256_hex(item.as_bytes()),
                    })
                    .collect(),
                signing_key_arn: signer.key_id().into(),
                public_key_sha256: fingerprint(signer.public_key_der()),
            };
            let bytes = checkpoint.to_bytes();
            let signature = now(signer.sign(&bytes)).expect("signed");
            checkpoints.push((key, bytes, Some(signature)));
        }
        Case {
            id,
            events,
            checkpoints,
            signer,
        }
    }

    fn has(findings: &[Finding], what: &str, words: &[&str]) -> bool {
        findings
            .iter()
            .any(|f| f.what == what && words.iter().all(|w| f.problem.contains(w)))
    }

    fn key(number: u64) -> String {
        checkpoint_key("ev", &CaseId::parse("IR-1").expect("case"), number)
    }

    #[test]
    fn an_intact_sealed_chain_has_no_findings() {
        let case = sealed_case();
        assert_eq!(case.findings(), Vec::new());
        assert_eq!(
            case.checkpoints[0].0,
            "ev/cases/IR-1/custody/checkpoints/00000001.json"
        );
    }

    #[test]
    fn an_edited_event_is_named() {
        // Event 4 is the one checkpoint 2 names.
        let mut case = sealed_case();
        let text = String::from_utf8(case.events[3].1.clone()).expect("utf8");
        case.events[3].1 = text.replace("snap-4", "snap-X").into_bytes();
        let findings = case.findings();
        assert!(
            has(&findings, &key(2), &["event 4", "edited"]),
            "{findings:#?}"
        );
        let event_4 = case.events[3].0.clone();
        assert!(
            has(&findings, &event_4, &["event 5", "edited"]),
            "{findings:#?}"
        );

        // Event 3 is sealed only through event 4's link.
        let mut case = sealed_case();
        let text = String::from_utf8(case.events[2].1.clone()).expect("utf8");
        case.events[2].1 = text.replace("snap-3", "snap-X").into_bytes();
        let findings = case.findings();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            has(
                &findings,
                &case.events[2].0,
                &["event 3 hashes", "event 3 was edited"]
            ),
            "{findings:#?}"
        );
    }

    #[test]
    fn deleted_events_are_named() {
        let mut case = sealed_case();
        case.events.pop();
        let findings = case.findings();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            has(
                &findings,
                &key(3),
                &["event 6", "highest stored event is 5", "truncated"]
            ),
            "{findings:#?}"
        );

        let mut case = sealed_case();
        let removed = case.events.remove(1).0;
        let findings = case.findings();
        assert!(
            has(&findings, &removed, &["event 2 is missing", "deleted"]),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(1), &["no event 2 is stored"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_deleted_checkpoint_is_a_gap() {
        let mut case = sealed_case();
        case.checkpoints.remove(1);
        let findings = case.findings();
        assert_eq!(
            findings,
            vec![Finding {
                what: key(2),
                problem: "checkpoint 2 of case IR-1 is missing (checkpoints up to 3 exist): it \
                          was deleted"
                    .into()
            }]
        );
    }

    #[test]
    fn numbers_far_ahead_are_one_run_not_a_count() {
        let mut case = sealed_case();
        let forged = String::from_utf8(case.checkpoints[2].1.clone())
            .expect("utf8")
            .replace("\"number\": 3", "\"number\": 1000000000000");
        case.checkpoints
            .push((key(1_000_000_000_000), forged.into_bytes(), None));
        let mut event: Event = serde_json::from_slice(&case.events[5].1).expect("event");
        event.seq = u64::MAX;
        case.events
            .push((event_key("ev", &case.id, u64::MAX), event.to_bytes()));
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &checkpoints_prefix("ev", &case.id),
                &["checkpoints 4 to 999999999999 of case IR-1 are missing"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(
                &findings,
                &case.events[0].0.replace("00000001.json", ""),
                &[&format!("custody events 7 to {} are missing", u64::MAX - 1)]
            ),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(1_000_000_000_000), &[".sig is missing"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_swapped_signature_is_named_twice() {
        let mut case = sealed_case();
        case.checkpoints[1].2 = case.checkpoints[2].2.clone();
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &key(2),
                &["00000002.json.sig does not check out", "does not verify"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(3), &["another signature of checkpoint 2"]),
            "{findings:#?}"
        );
        assert_eq!(findings.len(), 2, "{findings:#?}");

        let mut case = sealed_case();
        case.checkpoints[0].2 = None;
        let findings = case.findings();
        assert!(
            has(&findings, &key(1), &["00000001.json.sig is missing"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_moved_checkpoint_is_named() {
        let mut case = sealed_case();
        let moved = key(2).replace("00000002", "moved-00000002");
        case.checkpoints[1].0 = moved.clone();
        let findings = case.findings();
        assert!(
            has(
                &findings,
                &moved,
                &[&format!("says it is stored at {}", key(2)), "moved"]
            ),
            "{findings:#?}"
        );
        assert!(
            has(
                &findings,
                &key(3),
                &[&format!("names {} as checkpoint 2", key(2))]
            ),
            "{findings:#?}"
        );
    }

    #[test]
    fn an_edited_checkpoint_is_named() {
        let mut case = sealed_case();
        let text = String::from_utf8(case.checkpoints[1].1.clone()).expect("utf8");
        case.checkpoints[1].1 = text.replace("\"b\"", "\"z\"").into_bytes();
        let findings = case.findings();
        assert!(
            has(&findings, &key(2), &["does not verify"]),
            "{findings:#?}"
        );
        assert!(
            has(&findings, &key(3), &["checkpoint 2 was edited"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn a_wrong_public_key_is_named() {
        let case = sealed_case();
        let other = MemorySigner::from_seed(9, ARN);
        let findings = verify_checkpoints(
            &case.id,
            &case.events,
            &case.checkpoints,
            other.public_key_der(),
        );
        for number in 1..=3 {
            assert!(
                has(&findings, &key(number), &["does not verify"]),
                "{findings:#?}"
            );
            assert!(
                has(
                    &findings,
                    &key(number),
                    &[&fingerprint(other.public_key_der()), "another key"]
                ),
                "{findings:#?}"
            );
        }
        // Nothing is sealed by a key that is not trusted.
        assert!(has(
            &findings,
            &case.events[0].0,
            &["not covered by a signed checkpoint"]
        ));

        let findings = verify_checkpoints(&case.id, &case.events, &case.checkpoints, b"junk");
        assert!(
            has(&findings, "the trusted public key", &["P-256"]),
            "{findings:#?}"
        );
    }

    #[test]
    fn events_after_the_last_checkpoint_are_not_sealed() {
        let mut case = sealed_case();
        append_events(&case.id, &mut case.events, 2);
        let findings = case.findings();
        assert_eq!(findings.len(), 2, "{findings:#?}");
        for seq in [7, 8] {
            assert!(
                has(
                    &findings,
                    &case.events[seq - 1].0,
                    &[
                        &format!("event {seq} is not covered by a signed checkpoint"),
                        "through event 6"
                    ]
                ),
                "{findings:#?}"
            );
        }

        let mut case = sealed_case();
        case.checkpoints.clear();
        let findings = case.findings();
        assert_eq!(findings.len(), 6, "{findings:#?}");
    }

    #[test]
    fn verify_md_gives_every_command_and_value() {
        let fp = fingerprint(signer().public_key_der());
        let image = "ab".repeat(32);
        let guide = VerifyGuide {
            item_id: "vol-0abc",
            case: "IR-1",
            kind: "volume",
            signing_key_arn: ARN,
            public_key_sha256: &fp,
            image_sha256: Some(&image),
            rebuild: true,
            raw_image_path: None,
        };
        let md = verify_md(&guide);
        for needed in [
            fp.as_str(),
            ARN,
            image.as_str(),
            "sha256sum -c tagmanifest-sha256.txt",
            "sha256sum -c manifest-sha256.txt",
            "bagit.py --validate .",
            "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum",
            &format!(
                "aws kms get-public-key --key-id {ARN} --query PublicKey --output text | base64 -d | sha256sum"
            ),
            "openssl dgst -sha256 -verify signing-key.pem -signature tagmanifest-sha256.txt.sig tagmanifest-sha256.txt",
            "Verified OK",
            "sh rebuild.sh disk.raw && sha256sum -c data/image.sha256",
            "sh rebuild.sh - | sha256sum",
            "acquisition/",
            "zero runs",
        ] {
            assert!(md.contains(needed), "VERIFY.md lacks {needed:?}:\n{md}");
        }
        assert_eq!(md.matches("```sh").count(), 7, "{md}");
        assert_eq!(md.matches("```").count() % 2, 0, "fences are closed");

        let raw = verify_md(&VerifyGuide {
            rebuild: false,
            raw_image_path: Some("data/disk.raw"),
            ..guide
        });
        assert!(raw.contains("sha256sum -c data/image.sha256") && raw.contains(&image));
        assert!(!raw.contains("rebuild.sh"));

        let record = verify_md(&VerifyGuide {
            kind: "instance-record",
            image_sha256: None,
            rebuild: false,
            raw_image_path: None,
            ..guide
        });
        assert!(!record.contains("## 4.") && !record.contains("image.sha256"));
        assert!(record.contains("Verified OK"));

        let odd = verify_md(&VerifyGuide {
            signing_key_arn: "alias/it's",
            ..guide
        });
        assert!(odd.contains("--key-id 'alias/it'\\''s'"), "{odd}");
    }
}
