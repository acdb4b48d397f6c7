//! [`Signer`] over AWS KMS: the forensic account's asymmetric key (ECC_NIST_P256, SIGN_VERIFY)
//! signs tag manifests and custody checkpoints. The private key never leaves KMS; forensnap signs
//! the SHA-256 of the message (`MessageType=DIGEST`, so files of any size can be signed), which
//! is exactly what `openssl dgst -sha256 -verify` checks over the message itself.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use forensnap_core::seal::{SignError, Signer};
use sha2::{Digest, Sha256};

use crate::errors::aws_error;

/// The forensic signing key in KMS.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    /// KMS client of the forensic account.
    kms: aws_sdk_kms::Client,
    /// The key's ARN (resolved from an alias).
    key_arn: String,
    /// Its public key, DER SubjectPublicKeyInfo.
    public_key: Vec<u8>,
}

/// Why the configured signing key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("forensic.signing_key_arn {key}: {problem}. Next: {next}")]
pub struct SignerError {
    /// The configured key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub next: &'static str,
}

impl KmsSigner {
    /// The key `key_id` (ARN or alias ARN), checked to be an ECC_NIST_P256 signing key.
    pub async fn new(kms: aws_sdk_kms::Client, key_id: &str) -> Result<KmsSigner, SignerError> {
        let fail = |problem: String| SignerError {
            key: key_id.to_string(),
            problem,
            next: "create it as KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY (forensic-vpc/forensic-account.yaml does) and allow the forensic role kms:DescribeKey, kms:GetPublicKey and kms:Sign",
        };
        // DescribeKey first: a key of the wrong kind is named as such even when (as the forensic
        // template's least privilege has it) the role may not read that key's public key.
        let described = kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| fail(aws_error("DescribeKey", e).to_string()))?;
        let metadata = described.key_metadata();
        let (spec, usage) = (
            metadata.and_then(|m| m.key_spec()),
            metadata.and_then(|m| m.key_usage()),
        );
        if spec != Some(&KeySpec::EccNistP256) || usage != Some(&KeyUsageType::SignVerify) {
            return Err(fail(format!(
                "it is a {spec:?} {usage:?} key, not ECC_NIST_P256 SIGN_VERIFY"
            )));
        }
        let out = kms
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| fail(aws_error("GetPublicKey", e).to_string()))?;
        let public_key = out
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| fail("GetPublicKey returned no public key".into()))?;
        Ok(KmsSigner {
            key_arn: out.key_id().unwrap_or(key_id).to_string(),
            kms,
            public_key,
        })
    }
}

impl Signer for KmsSigner {
    fn key_id(&self) -> &str {
        &self.key_arn
    }

    fn public_key_der(&self) -> &[u8] {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = Sha256::digest(message);
        let out = self
            .kms
            .sign()
            .key_id(&self.key_arn)
            .message(Blob::new(digest.to_vec()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| SignError(aws_error("Sign", e).to_string()))?;
        out.signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| SignError(format!("Sign with {}: no signature returned", self.key_arn)))
    }
}
