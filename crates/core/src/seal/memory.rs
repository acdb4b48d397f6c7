//! `MemorySigner`, a P-256 key held in memory for tests (this crate's, and other crates' with
//! feature `memory-signer`), and the seal tests' shared helpers around it. Never for evidence:
//! real signatures come from the forensic account's KMS key.

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

/// Test helpers around the memory signer, shared by the seal modules' tests.
#[cfg(test)]
pub(super) mod fixtures {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::MemorySigner;

    pub(in crate::seal) const ARN: &str =
        "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    /// Run a future that is ready at once (the memory signer's).
    pub(in crate::seal) fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the memory signer never waits"),
        }
    }

    pub(in crate::seal) fn signer() -> MemorySigner {
        MemorySigner::from_seed(1, ARN)
    }
}
