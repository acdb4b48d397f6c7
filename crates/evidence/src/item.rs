//! Evidence items as BagIt 1.0 bags in the evidence store: after an item's payload is stored
//! (`data/...`), its tag files are written, `tagmanifest-sha256.txt` last, so a bag with a tag
//! manifest is complete and a bag without one is sealed again by the next run.
//!
//! A volume's bag holds the data object (`data/blocks.bin` or `data/disk.raw`), the block map
//! (`data/blockmap.tsv`), the image's `sha256sum` line (`data/image.sha256`) and, for the blocks
//! layout, `rebuild.sh` (POSIX sh + dd) that rebuilds or streams the raw image. Auditors check a
//! downloaded bag with `sha256sum -c` and `bagit.py --validate` alone.

use forensnap_core::bag::{
    IMAGE_NAME, MANIFEST_PATH, PayloadFile, REBUILD_SCRIPT_PATH, TagFile, parse_manifest,
    rebuild_script, sha256sum_line,
};
use forensnap_core::keys::{ItemLayout, signature_of};
use forensnap_core::layout::{BLOCK_MAP_PATH, IMAGE_SHA256_PATH, Layout};
use sha2::{Digest, Sha256};

use forensnap_core::seal::{
    PUBLIC_KEY_PATH, SignError, Signer, VERIFY_PATH, VerifyGuide, fingerprint, public_key_pem,
    verify_md,
};

use crate::Acquired;
use forensnap_store::{CloudError, EvidenceWrite};

/// Path of the tag manifest, the last file of a bag written.
pub use forensnap_core::bag::TAG_MANIFEST_PATH as TAG_MANIFEST;

/// What kind of evidence an item holds (defined in the core, where custody events name it).
pub use forensnap_core::ItemKind;

/// A failure while sealing a bag.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The store failed.
    #[error("evidence item at {prefix}: {what}: {source}")]
    Sink {
        /// The item's prefix.
        prefix: String,
        /// What was being read or written.
        what: String,
        /// Cause (boxed: it carries AWS's code, message and request id).
        source: Box<CloudError>,
    },
    /// The signing key refused.
    #[error("evidence item at {prefix}: signing its tag manifest with {key}: {source}")]
    Sign {
        /// The item's prefix.
        prefix: String,
        /// The signing key.
        key: String,
        /// Cause.
        source: SignError,
    },
    /// The bag's contents are not valid.
    #[error("evidence item at {prefix}: {why}")]
    Invalid {
        /// The item's prefix.
        prefix: String,
        /// What is wrong.
        why: String,
    },
}

fn sink_failed(prefix: &str, what: &str) -> impl FnOnce(CloudError) -> ItemError + use<> {
    let (prefix, what) = (prefix.to_string(), what.to_string());
    move |source| ItemError::Sink {
        prefix,
        what,
        source: Box::new(source),
    }
}

/// Content type of the text files of a bag.
const TEXT: &str = "text/plain; charset=utf-8";

/// The content type a bag file is stored with.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("txt" | "md" | "sh" | "tsv" | "sha256" | "pem") => TEXT,
        _ => "application/octet-stream",
    }
}

/// The value of `label` in parsed bag-info fields.
pub fn field<'a>(info: &'a [(String, String)], label: &str) -> Option<&'a str> {
    info.iter()
        .find(|(l, _)| l.eq_ignore_ascii_case(label))
        .map(|(_, v)| v.as_str())
}

/// The bag-info fields every volume bag carries (export and verify read them), before the
/// caller's own.
pub fn volume_fields(acquired: &Acquired) -> Vec<(String, String)> {
    [
        ("Evidence-Kind", ItemKind::Volume.as_str().to_string()),
        ("Snapshot-Id", acquired.snapshot_id.clone()),
        ("Layout", acquired.layout.as_str().to_string()),
        ("Volume-Bytes", acquired.volume_bytes.to_string()),
        ("Image-SHA256", acquired.image_sha256.clone()),
        ("Blocks-Stored", acquired.blocks_stored.to_string()),
        // Counted, not assumed; omitted for an acquisition that predates the count.
        (
            "AWS-Block-Checksums-Matched",
            acquired
                .aws_checksums_matched
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        ("Data-Bytes", acquired.data_bytes.to_string()),
        ("Block-Map-Bytes", acquired.block_map_bytes.to_string()),
        (
            "Data-Composite-SHA256",
            acquired.composite_sha256.clone().unwrap_or_default(),
        ),
        (
            "Data-CRC64NVME",
            acquired.data_crc64nvme.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(l, v)| (l.to_string(), v))
    .collect()
}

/// A sealed bag as a checkpoint and `collect --output json` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBag {
    /// Payload files with their SHA-256, sorted by path (as `manifest-sha256.txt` lists them).
    pub files: Vec<(String, String)>,
    /// SHA-256 of `tagmanifest-sha256.txt`, hex: what the signed checkpoints vouch for.
    pub tagmanifest_sha256: String,
}

impl SealedBag {
    fn new(payload: &[PayloadFile], tagmanifest_sha256: String) -> Self {
        let mut files: Vec<(String, String)> = payload
            .iter()
            .map(|p| (p.path.clone(), p.sha256.clone()))
            .collect();
        files.sort();
        SealedBag {
            files,
            tagmanifest_sha256,
        }
    }
}

/// A sealed bag's payload files (as its `manifest-sha256.txt` lists them) and its tag
/// manifest's SHA-256, or `None` when the bag is not sealed yet (no signed tag manifest).
pub async fn sealed<K: EvidenceWrite>(
    sink: &K,
    prefix: &str,
) -> Result<Option<SealedBag>, ItemError> {
    // The signature is written last: without it the bag is sealed again (and signed).
    let key = signature_of(&ItemLayout::at(prefix).file(TAG_MANIFEST));
    if sink
        .get(&key)
        .await
        .map_err(sink_failed(prefix, "the tag manifest's signature"))?
        .is_none()
    {
        return Ok(None);
    }
    let key = ItemLayout::at(prefix).file(MANIFEST_PATH);
    let text = sink
        .get(&key)
        .await
        .map_err(sink_failed(prefix, "manifest-sha256.txt"))?
        .ok_or_else(|| ItemError::Invalid {
            prefix: prefix.into(),
            why: "the bag has a tag manifest but no manifest-sha256.txt".into(),
        })?;
    let text = String::from_utf8(text).map_err(|e| ItemError::Invalid {
        prefix: prefix.into(),
        why: format!("manifest-sha256.txt is not UTF-8: {e}"),
    })?;
    let files = parse_manifest(&text).map_err(|e| ItemError::Invalid {
        prefix: prefix.into(),
        why: e.to_string(),
    })?;
    let key = ItemLayout::at(prefix).file(TAG_MANIFEST);
    let tag_manifest = sink
        .get(&key)
        .await
        .map_err(sink_failed(prefix, TAG_MANIFEST))?
        .ok_or_else(|| ItemError::Invalid {
            prefix: prefix.into(),
            why: "the bag has a signature but no tagmanifest-sha256.txt".into(),
        })?;
    Ok(Some(SealedBag {
        files,
        tagmanifest_sha256: hex::encode(Sha256::digest(&tag_manifest)),
    }))
}

/// What `VERIFY.md` needs to know of an item besides its bag.
#[derive(Debug, Clone, Copy)]
pub struct Guide<'a> {
    /// Item id.
    pub id: &'a str,
    /// Case id.
    pub case: &'a str,
    /// What the item holds.
    pub kind: ItemKind,
}

/// Write the tag files of the bag at `prefix` whose payload (`data/...`) is already stored,
/// `VERIFY.md` among them (with the image's SHA-256 and layout for a volume), then the public key (`signing-key.pem`) and last the signature of the
/// tag manifest (`tagmanifest-sha256.txt.sig`, DER ECDSA P-256 over its bytes). Returns the tag
/// manifest's SHA-256 (hex), which the custody checkpoint records without reading it back.
#[allow(clippy::too_many_arguments)]
pub async fn seal<K: EvidenceWrite, G: Signer>(
    sink: &K,
    prefix: &str,
    payload: &[PayloadFile],
    info: &[(String, String)],
    mut extra: Vec<TagFile>,
    signer: &G,
    guide: Guide<'_>,
    image: Option<(&str, Layout)>,
) -> Result<String, ItemError> {
    let public_key = signer.public_key_der();
    let fingerprint = fingerprint(public_key);
    let guide = VerifyGuide {
        item_id: guide.id,
        case: guide.case,
        kind: guide.kind.as_str(),
        signing_key_arn: signer.key_id(),
        public_key_sha256: &fingerprint,
        image_sha256: image.map(|(hash, _)| hash),
        rebuild: matches!(image, Some((_, Layout::Blocks))),
        raw_image_path: matches!(image, Some((_, Layout::Raw))).then_some(Layout::Raw.data_path()),
    };
    extra.push(TagFile {
        path: VERIFY_PATH.into(),
        bytes: verify_md(&guide).into_bytes(),
    });
    // The key that signs the tag manifest, named inside what it signs.
    let mut info = info.to_vec();
    info.push(("Signing-Key-Arn".into(), signer.key_id().into()));
    info.push(("Signing-Key-SHA256".into(), fingerprint.clone()));
    let files =
        forensnap_core::bag::tag_files(&info, payload, extra).map_err(|e| ItemError::Invalid {
            prefix: prefix.into(),
            why: e.to_string(),
        })?;
    let mut tag_manifest = Vec::new();
    for file in files {
        let key = ItemLayout::at(prefix).file(&file.path);
        if file.path == TAG_MANIFEST {
            tag_manifest = file.bytes.clone();
        }
        sink.put_version(&key, file.bytes, content_type(&file.path))
            .await
            .map_err(sink_failed(prefix, &file.path))?;
    }
    let signature = signer
        .sign(&tag_manifest)
        .await
        .map_err(|e| ItemError::Sign {
            prefix: prefix.into(),
            key: signer.key_id().into(),
            source: e,
        })?;
    sink.put_version(
        &ItemLayout::at(prefix).file(PUBLIC_KEY_PATH),
        public_key_pem(public_key).into_bytes(),
        "application/x-pem-file",
    )
    .await
    .map_err(sink_failed(prefix, PUBLIC_KEY_PATH))?;
    sink.put_version(
        &signature_of(&ItemLayout::at(prefix).file(TAG_MANIFEST)),
        signature,
        "application/octet-stream",
    )
    .await
    .map_err(sink_failed(prefix, "the tag manifest's signature"))?;
    Ok(hex::encode(Sha256::digest(&tag_manifest)))
}

/// Store `data/image.sha256` and seal the bag of an acquired volume; returns the sealed bag.
pub async fn seal_volume<K: EvidenceWrite, G: Signer>(
    sink: &K,
    prefix: &str,
    acquired: &Acquired,
    info: &[(String, String)],
    signer: &G,
    guide: Guide<'_>,
) -> Result<SealedBag, ItemError> {
    // The rebuilt image is `disk.raw` in the bag root (blocks layout) or the stored object itself
    // (raw layout): either way `sha256sum -c data/image.sha256` from the bag root checks it.
    let image_name = match acquired.layout {
        Layout::Blocks => IMAGE_NAME,
        Layout::Raw => Layout::Raw.data_path(),
    };
    let image_line = sha256sum_line(&acquired.image_sha256, image_name).into_bytes();
    let payload = vec![
        PayloadFile {
            path: acquired.layout.data_path().into(),
            sha256: acquired.data_sha256.clone(),
            size: acquired.data_bytes,
        },
        PayloadFile {
            path: BLOCK_MAP_PATH.into(),
            sha256: acquired.block_map_sha256.clone(),
            size: acquired.block_map_bytes,
        },
        PayloadFile {
            path: IMAGE_SHA256_PATH.into(),
            sha256: hex::encode(Sha256::digest(&image_line)),
            size: image_line.len() as u64,
        },
    ];
    sink.put_version(
        &ItemLayout::at(prefix).file(IMAGE_SHA256_PATH),
        image_line,
        TEXT,
    )
    .await
    .map_err(sink_failed(prefix, IMAGE_SHA256_PATH))?;
    let extra = match acquired.layout {
        Layout::Blocks => vec![TagFile {
            path: REBUILD_SCRIPT_PATH.into(),
            bytes: rebuild_script(
                acquired.volume_bytes,
                Layout::Blocks.data_path(),
                BLOCK_MAP_PATH,
                &acquired.image_sha256,
            )
            .into_bytes(),
        }],
        Layout::Raw => Vec::new(),
    };
    let mut fields = volume_fields(acquired);
    fields.extend(info.iter().cloned());
    let image = Some((acquired.image_sha256.as_str(), acquired.layout));
    let tagmanifest_sha256 =
        seal(sink, prefix, &payload, &fields, extra, signer, guide, image).await?;
    Ok(SealedBag::new(&payload, tagmanifest_sha256))
}

/// Seal the bag of a small item whose payload objects (under `data/`) are stored, with the
/// SHA-256 and size recorded when they were stored (S3 checked that SHA-256 on the way in). No
/// payload object is read back.
pub async fn seal_small<K: EvidenceWrite, G: Signer>(
    sink: &K,
    prefix: &str,
    payload: &[PayloadFile],
    info: &[(String, String)],
    signer: &G,
    guide: Guide<'_>,
) -> Result<SealedBag, ItemError> {
    let tagmanifest_sha256 =
        seal(sink, prefix, payload, info, Vec::new(), signer, guide, None).await?;
    Ok(SealedBag::new(payload, tagmanifest_sha256))
}
