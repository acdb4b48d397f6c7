//! Signed checkpoints of a case's custody chain: the [`Checkpoint`] format (schema
//! [`CHECKPOINT_SCHEMA`], stored as signed); where they are stored is
//! [`crate::keys::CaseLayout::checkpoint`], beside the custody events.

use super::{CHECKPOINT_SCHEMA, SealError};

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

/// A signed checkpoint of a case's custody chain, stored at [`crate::CaseLayout::checkpoint`] with its DER
/// signature at the same key plus [`SIGNATURE_SUFFIX`](super::SIGNATURE_SUFFIX).
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
    /// [`fingerprint`](super::fingerprint) of that key's public key.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custody::GENESIS;
    use crate::seal::memory::fixtures::ARN;
    use crate::seal::verify::folder_of;

    #[test]
    fn keys_are_derived_from_the_events_prefix() {
        let case = crate::CaseId::parse("IR-7").expect("case");
        let layout = |prefix| crate::CaseLayout::new(prefix, &case);
        assert_eq!(
            layout("/evidence/").checkpoint(3),
            "evidence/cases/IR-7/custody/checkpoints/00000003.json"
        );
        assert_eq!(layout("").checkpoints(), "cases/IR-7/custody/checkpoints/");
        assert_eq!(
            folder_of(&layout("p").checkpoint(1)),
            layout("p").checkpoints()
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
}
