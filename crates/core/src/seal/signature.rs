//! ECDSA P-256 signatures as KMS makes them (ECDSA_SHA_256, DER) and OpenSSL checks them:
//! [`verify_signature`], and the [`fingerprint`] that names a public key.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::SealError;
use crate::custody::sha256_hex;

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

/// The SPKI DER as a P-256 verifying key.
pub(super) fn decode_public_key(spki_der: &[u8]) -> Result<VerifyingKey, SealError> {
    VerifyingKey::from_public_key_der(spki_der).map_err(|e| SealError::PublicKey {
        why: format!("{} bytes of DER that do not decode: {e}", spki_der.len()),
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use time::OffsetDateTime;

    use super::*;
    use crate::bag::shell::require_program;
    use crate::seal::memory::fixtures::{ARN, now, signer};
    use crate::seal::{
        MemorySigner, PUBLIC_KEY_PATH, Signer as _, parse_public_key_pem, public_key_pem,
    };

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
        // The commands an auditor runs (VERIFY.md): they must be here, or interop is unchecked.
        require_program("openssl", "openssl");
        require_program("sha256sum", "coreutils");
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
}
