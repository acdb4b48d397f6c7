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
//!
//! This module owns the file names, the errors and the [`Signer`] trait; the work is done in
//! submodules, whose public items are re-exported here (`forensnap_core::seal::X` is the only path
//! to use):
//!
//! * `signature`  -- [`verify_signature`] and key [`fingerprint`]s.
//! * `pem`        -- the `signing-key.pem` armor of a public key, written and read.
//! * `checkpoint` -- the [`Checkpoint`] format and where checkpoints are stored.
//! * `verify`     -- [`verify_checkpoints`], the walk over a case's checkpoints; its [`Finding`]s.
//! * `events`     -- the stored custody events as that walk reads and checks them.
//! * `guide`      -- [`verify_md`], the auditor's VERIFY.md.
//! * `memory`     -- `MemorySigner`, an in-memory key for tests, and the tests' shared helpers.

mod checkpoint;
mod events;
mod guide;
#[cfg(any(test, feature = "memory-signer"))]
mod memory;
mod pem;
mod signature;
mod verify;

pub use checkpoint::{ChainPosition, Checkpoint, PreviousCheckpoint, SealedItem};
pub use guide::{VerifyGuide, verify_md};
#[cfg(any(test, feature = "memory-signer"))]
pub use memory::MemorySigner;
pub use pem::{parse_public_key_pem, public_key_pem};
pub use signature::{fingerprint, verify_signature};
pub use verify::{CheckpointObject, Finding, verify_checkpoints};

/// Suffix of a signature file: the DER signature of `X` is stored as `X.sig`.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// Public key file in a bag root and beside checkpoints.
pub const PUBLIC_KEY_PATH: &str = "signing-key.pem";
/// Instructions file in a bag root (a tag file, so it is listed in tagmanifest-sha256.txt).
pub const VERIFY_PATH: &str = "VERIFY.md";
/// Version tag of the checkpoint format, stored in every checkpoint.
pub const CHECKPOINT_SCHEMA: &str = "forensnap.checkpoint/1";

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
