//! Memory capture, computed: the transfer plan handed to the suspect host (presigned part URLs,
//! nothing else), the one line the host's capture script reports, and the LiME ranges of a
//! captured image.
//!
//! The host is never trusted alone: it reports its own SHA-256 of what it sent
//! ([`HostReport`]), forensnap hashes what arrived in S3, and the two are compared.

use serde::{Deserialize, Serialize};

/// The plan's schema name.
pub const PLAN_SCHEMA: &str = "forensnap.memory-plan/v1";
/// The payload path of a memory image in its bag.
pub const IMAGE_PATH: &str = "data/memory.lime";
/// The first word of the host's report line.
const REPORT_PREFIX: &str = "forensnap-memory";
/// LiME's magic number ("EMiL" little-endian).
pub const LIME_MAGIC: u32 = 0x4C69_4D45;
/// A LiME range header's length.
pub const LIME_HEADER_BYTES: usize = 32;

/// One part URL of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPart {
    /// S3 part number, from 1.
    pub number: u32,
    /// The presigned UploadPart URL, scoped to this object, upload and part, short-lived.
    pub url: String,
}

/// What the host's capture script fetches: where each part of the image goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferPlan {
    /// Always [`PLAN_SCHEMA`].
    pub schema: String,
    /// Bytes per part (the last part may be shorter).
    pub part_bytes: u64,
    /// The part URLs, in order.
    pub parts: Vec<PlanPart>,
}

impl TransferPlan {
    /// A plan of `urls` (part 1 first) of `part_bytes` each.
    pub fn new(part_bytes: u64, urls: Vec<String>) -> TransferPlan {
        TransferPlan {
            schema: PLAN_SCHEMA.to_string(),
            part_bytes,
            parts: urls
                .into_iter()
                .enumerate()
                .map(|(i, url)| PlanPart {
                    number: i as u32 + 1,
                    url,
                })
                .collect(),
        }
    }

    /// The most bytes the plan can carry.
    pub fn capacity(&self) -> u64 {
        self.part_bytes.saturating_mul(self.parts.len() as u64)
    }
}

/// How many parts of `part_bytes` an image of a machine with `memory_mib` of RAM needs, with
/// room for LiME headers, memory the type reports low, and one spare part.
pub fn parts_for(memory_mib: u64, part_bytes: u64) -> u32 {
    let bytes = memory_mib.saturating_mul(1 << 20);
    let margin = bytes / 50 + (64 << 20);
    let parts = (bytes + margin).div_ceil(part_bytes.max(1)) + 1;
    u32::try_from(parts.min(10_000)).unwrap_or(10_000)
}

/// What the host's capture script reported of the image it sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The host's SHA-256 of the image, as streamed.
    pub sha256: String,
    /// Bytes streamed.
    pub bytes: u64,
    /// Parts uploaded.
    pub parts: u32,
    /// The SHA-256 of the AVML binary the host ran.
    pub avml_sha256: String,
}

/// The report line (`forensnap-memory sha256=<hex> bytes=<n> parts=<k> avml_sha256=<hex>`) in
/// the host's standard output; `None` when there is none or it does not read.
pub fn host_report(stdout: &str) -> Option<HostReport> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(REPORT_PREFIX))?;
    let mut fields = std::collections::BTreeMap::new();
    for word in line.split_whitespace().skip(1) {
        let (k, v) = word.split_once('=')?;
        fields.insert(k, v);
    }
    let hex64 = |v: &str| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
    let sha256 = fields
        .get("sha256")
        .filter(|v| hex64(v))?
        .to_ascii_lowercase();
    let avml_sha256 = fields
        .get("avml_sha256")
        .filter(|v| hex64(v))?
        .to_ascii_lowercase();
    Some(HostReport {
        sha256,
        bytes: fields.get("bytes")?.parse().ok()?,
        parts: fields.get("parts")?.parse().ok()?,
        avml_sha256,
    })
}

/// One physical range of a LiME image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimeRange {
    /// First physical address.
    pub start: u64,
    /// Last physical address (inclusive, as LiME records it).
    pub end: u64,
    /// Offset of the range's header in the image.
    pub offset: u64,
}

/// Why an image is not LiME.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimeError {
    /// A header does not start with LiME's magic.
    #[error("no LiME header at offset {offset} (magic {found:#010x}, want {LIME_MAGIC:#010x})")]
    Magic {
        /// Where it was expected.
        offset: u64,
        /// What was there.
        found: u32,
    },
    /// A header's range ends before it starts, or runs past the image.
    #[error("the LiME range at offset {offset} ({start:#x}..={end:#x}) {why}")]
    Range {
        /// Where its header is.
        offset: u64,
        /// First address.
        start: u64,
        /// Last address.
        end: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// Reads the LiME range headers of an image of `size` bytes from its headers alone: `header`
/// reads the 32 bytes at an offset. Walks header to header (each range's data follows its
/// header), so it reads `32 x ranges` bytes, never the data.
pub fn lime_ranges(
    size: u64,
    mut header: impl FnMut(u64) -> Option<[u8; LIME_HEADER_BYTES]>,
) -> Result<Vec<LimeRange>, LimeError> {
    let mut ranges = Vec::new();
    let mut offset = 0u64;
    while offset < size {
        let Some(bytes) = header(offset) else {
            return Err(LimeError::Range {
                offset,
                start: 0,
                end: 0,
                why: "has a header cut short by the end of the image",
            });
        };
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != LIME_MAGIC {
            return Err(LimeError::Magic {
                offset,
                found: magic,
            });
        }
        let (start, end) = (word(8), word(16));
        let range = |why| LimeError::Range {
            offset,
            start,
            end,
            why,
        };
        if end < start {
            return Err(range("ends before it starts"));
        }
        let data = end - start + 1;
        let next = offset
            .checked_add(LIME_HEADER_BYTES as u64)
            .and_then(|o| o.checked_add(data))
            .ok_or_else(|| range("is larger than any image"))?;
        if next > size {
            return Err(range("runs past the end of the image"));
        }
        ranges.push(LimeRange { start, end, offset });
        offset = next;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(start: u64, end: u64) -> [u8; 32] {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&LIME_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..16].copy_from_slice(&start.to_le_bytes());
        h[16..24].copy_from_slice(&end.to_le_bytes());
        h
    }

    fn image(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (start, end) in ranges {
            out.extend_from_slice(&header(*start, *end));
            out.resize(out.len() + (end - start + 1) as usize, 0xAB);
        }
        out
    }

    fn read(image: &[u8]) -> impl FnMut(u64) -> Option<[u8; 32]> + '_ {
        |offset| {
            let at = offset as usize;
            image.get(at..at + 32).map(|s| s.try_into().expect("32"))
        }
    }

    #[test]
    fn ranges_are_read_from_the_headers() {
        let img = image(&[(0, 4095), (0x10_0000, 0x10_1fff)]);
        let ranges = lime_ranges(img.len() as u64, read(&img)).expect("lime");
        assert_eq!(
            ranges,
            vec![
                LimeRange {
                    start: 0,
                    end: 4095,
                    offset: 0
                },
                LimeRange {
                    start: 0x10_0000,
                    end: 0x10_1fff,
                    offset: 4096 + 32
                },
            ]
        );
    }

    #[test]
    fn a_cut_or_foreign_image_is_named() {
        let img = image(&[(0, 4095)]);
        let cut = &img[..img.len() - 1];
        assert!(matches!(
            lime_ranges(cut.len() as u64, read(cut)),
            Err(LimeError::Range {
                why: "runs past the end of the image",
                ..
            })
        ));
        let mut foreign = img.clone();
        foreign[0] = b'X';
        assert!(matches!(
            lime_ranges(foreign.len() as u64, read(&foreign)),
            Err(LimeError::Magic { offset: 0, .. })
        ));
        let backwards = image(&[(0, 0)]);
        let mut b = backwards.clone();
        b[8..16].copy_from_slice(&10u64.to_le_bytes());
        assert!(lime_ranges(b.len() as u64, read(&b)).is_err());
    }

    #[test]
    fn the_host_report_line_reads_and_anything_else_does_not() {
        let sha = "ab".repeat(32);
        let avml = "cd".repeat(32);
        let out = format!(
            "avml: writing\nforensnap-memory sha256={sha} bytes=67108928 parts=2 avml_sha256={avml}\n"
        );
        assert_eq!(
            host_report(&out),
            Some(HostReport {
                sha256: sha.clone(),
                bytes: 67_108_928,
                parts: 2,
                avml_sha256: avml.clone()
            })
        );
        assert_eq!(host_report("nothing here"), None);
        assert_eq!(
            host_report(&format!(
                "forensnap-memory sha256=xyz bytes=1 parts=1 avml_sha256={avml}"
            )),
            None
        );
        assert_eq!(
            host_report(&format!(
                "forensnap-memory sha256={sha} bytes=x parts=1 avml_sha256={avml}"
            )),
            None
        );
    }

    #[test]
    fn a_plan_has_room_for_the_whole_memory_and_one_spare_part() {
        let part = 64 << 20;
        let parts = parts_for(16 * 1024, part);
        let plan = TransferPlan::new(part, (0..parts).map(|i| format!("u{i}")).collect());
        assert!(plan.capacity() > 16 << 30);
        assert_eq!(plan.parts[0].number, 1);
        assert_eq!(parts_for(64, part), 4);
    }
}
