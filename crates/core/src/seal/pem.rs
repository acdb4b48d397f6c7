//! The PEM armor of the signing key's public half, `signing-key.pem` in every bag and beside the
//! checkpoints: written as `openssl pkey -pubin` writes it ([`public_key_pem`]) and read back
//! with OpenSSL's leniency but only for an ECDSA P-256 public key ([`parse_public_key_pem`]).

use base64::Engine as _;

use super::SealError;
use super::signature::decode_public_key;

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::sha256_hex;
    use crate::seal::memory::fixtures::signer;
    use crate::seal::{Signer as _, fingerprint, verify_signature};

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
}
