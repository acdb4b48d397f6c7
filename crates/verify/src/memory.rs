//! A memory item's own checks, from its bag alone (no AWS call): the image the manifest vouches
//! for (streamed and re-hashed by the payload check) is the one both the host and forensnap
//! hashed at capture (`Host-SHA256` and `Image-SHA256` in bag-info.txt, equal), `Memory-Bytes`
//! long, and a LiME image whose ranges read from its headers.

use forensnap_core::memory::IMAGE_PATH;
use forensnap_evidence::export::BagView;
use forensnap_evidence::item::field;
use forensnap_store::EvidenceAudit;

use crate::{MemoryFact, Report, VerifyError};

/// The check's name in the report.
const CHECK: &str = "memory";

/// Check the memory item `id` at `prefix`.
pub(crate) async fn check<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    id: &str,
    prefix: &str,
    view: &BagView,
) -> Result<(), VerifyError> {
    let subject = format!("{id} {IMAGE_PATH}");
    let manifest = view.manifest.get(IMAGE_PATH).cloned();
    let host = field(&view.info, "Host-SHA256").map(str::to_string);
    let image = field(&view.info, "Image-SHA256").map(str::to_string);
    let bytes = field(&view.info, "Memory-Bytes").and_then(|v| v.parse::<u64>().ok());
    let (Some(manifest), Some(host), Some(image), Some(bytes)) = (manifest, host, image, bytes)
    else {
        report.push(
            CHECK,
            subject,
            false,
            "the bag does not name the image, its size and both capture hashes (manifest, Memory-Bytes, Host-SHA256, Image-SHA256)",
        );
        return Ok(());
    };
    let agree = host == image && image == manifest;
    report.push(
        CHECK,
        subject.clone(),
        agree,
        if agree {
            format!("the host's SHA-256 and S3's at capture are the manifest's: {image}")
        } else {
            format!("host {host}, S3 at capture {image}, manifest {manifest}: they differ")
        },
    );
    let key = forensnap_core::ItemLayout::at(prefix).file(IMAGE_PATH);
    let ranges = forensnap_evidence::memory::lime_ranges_of(files, &key, bytes).await;
    match &ranges {
        Ok(ranges) => report.push(
            CHECK,
            subject,
            true,
            format!("a LiME image of {} ranges over {bytes} bytes", ranges.len()),
        ),
        Err(why) => report.push(CHECK, subject, false, format!("not a LiME image: {why}")),
    }
    if let Some(fact) = report.facts.items.get_mut(id) {
        fact.memory = Some(MemoryFact {
            host_sha256: host,
            image_sha256: image,
            bytes,
            lime_ranges: ranges.map(|r| r.len() as u64).ok(),
            command_id: field(&view.info, "Command-Id").map(str::to_string),
        });
    }
    Ok(())
}
