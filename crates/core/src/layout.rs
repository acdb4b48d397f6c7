//! How an acquired volume is laid out in S3: EBS's block size, multipart part sizing within S3's
//! limits, and the block map that lets anyone rebuild the raw image from the stored blocks.
//!
//! The default ("blocks") layout stores only the blocks EBS lists, concatenated in index order,
//! as one multipart object; the block map gives, per stored block, where it sits in the volume
//! and in the object, with our SHA-256 and AWS's checksum. A POSIX `sh` + `dd` loop over the map
//! rebuilds the raw image (unlisted blocks are zeros), whose SHA-256 is the image hash.

/// EBS direct API block size (fixed by AWS).
pub const BLOCK_SIZE: u64 = 524_288;
/// S3: at most 10,000 parts per multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3: parts are at least 5 MiB (but the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3: parts are at most 5 GiB.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// How a volume's data object holds the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only the blocks EBS lists, concatenated in index order (`data/blocks.bin`), plus the
    /// block map: storage proportional to data, the raw image rebuilt with sh + dd.
    #[default]
    Blocks,
    /// The whole raw image, zero runs included, as one object (`data/disk.raw`).
    Raw,
}

impl Layout {
    /// The data object's path inside the bag.
    pub fn data_path(self) -> &'static str {
        match self {
            Layout::Blocks => "data/blocks.bin",
            Layout::Raw => "data/disk.raw",
        }
    }

    /// Its name in configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Blocks => "blocks",
            Layout::Raw => "raw",
        }
    }
}

/// Path of the block map inside the bag.
pub const BLOCK_MAP_PATH: &str = "data/blockmap.tsv";
/// Path of the image's `sha256sum` line inside the bag.
pub const IMAGE_SHA256_PATH: &str = "data/image.sha256";

/// A volume too large for one S3 object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a volume of {volume_bytes} bytes does not fit one S3 object of at most {MAX_PARTS} parts of 5 GiB"
)]
pub struct TooLarge {
    /// The volume size.
    pub volume_bytes: u64,
}

/// Blocks per multipart part for a volume of `volume_bytes`: the smallest whole number of
/// blocks that is at least 5 MiB and keeps even a fully written volume within 10,000 parts.
/// It depends only on the volume size, so a resumed upload plans exactly the same parts.
pub fn blocks_per_part(volume_bytes: u64) -> Result<u64, TooLarge> {
    let blocks = volume_bytes.div_ceil(BLOCK_SIZE);
    let min = MIN_PART_BYTES / BLOCK_SIZE;
    let needed = blocks.div_ceil(MAX_PARTS).max(min);
    if needed * BLOCK_SIZE > MAX_PART_BYTES {
        return Err(TooLarge { volume_bytes });
    }
    Ok(needed)
}

/// One stored block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockMapEntry {
    /// EBS block index.
    pub index: u64,
    /// Byte offset in the volume (`index * BLOCK_SIZE`).
    pub offset: u64,
    /// Bytes (always `BLOCK_SIZE` for EBS).
    pub length: u64,
    /// Byte offset inside the stored blocks object.
    pub object_offset: u64,
    /// Our SHA-256 of the bytes, hex.
    pub sha256: String,
    /// AWS's `x-amz-Checksum` (base64 SHA-256) as returned by GetSnapshotBlock.
    pub aws_checksum: String,
}

/// Header line of the block map text (tab-separated, one block per line).
pub const BLOCK_MAP_HEADER: &str =
    "# index\toffset\tlength\tobject_offset\tsha256\taws_checksum_base64";

impl BlockMapEntry {
    /// One tab-separated line.
    pub fn to_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.index,
            self.offset,
            self.length,
            self.object_offset,
            self.sha256,
            self.aws_checksum
        )
    }

    /// Parse one line written by [`BlockMapEntry::to_line`].
    pub fn from_line(line: &str) -> Option<BlockMapEntry> {
        let mut fields = line.split('\t');
        let entry = BlockMapEntry {
            index: fields.next()?.parse().ok()?,
            offset: fields.next()?.parse().ok()?,
            length: fields.next()?.parse().ok()?,
            object_offset: fields.next()?.parse().ok()?,
            sha256: fields.next()?.to_string(),
            aws_checksum: fields.next()?.to_string(),
        };
        (fields.next().is_none() && entry.offset == entry.index * BLOCK_SIZE).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    #[test]
    fn parts_stay_within_s3_limits_for_every_volume_size() {
        for volume in [1, GIB, 8 * GIB, 100 * GIB, TIB, 16 * TIB, 48 * TIB] {
            let per_part = blocks_per_part(volume).expect("fits");
            let part_bytes = per_part * BLOCK_SIZE;
            assert!(
                (MIN_PART_BYTES..=MAX_PART_BYTES).contains(&part_bytes),
                "{volume}: {part_bytes}"
            );
            let parts = volume.div_ceil(BLOCK_SIZE).div_ceil(per_part);
            assert!(parts <= MAX_PARTS, "{volume}: {parts} parts");
        }
        assert_eq!(
            blocks_per_part(GIB).expect("fits"),
            10,
            "small volumes use 5 MiB parts"
        );
        assert!(
            blocks_per_part(64 * TIB).is_err(),
            "64 TiB does not fit one object"
        );
    }

    #[test]
    fn block_map_lines_round_trip() {
        let entry = BlockMapEntry {
            index: 7,
            offset: 7 * BLOCK_SIZE,
            length: BLOCK_SIZE,
            object_offset: BLOCK_SIZE,
            sha256: "ab".repeat(32),
            aws_checksum: "q83vEjRWeJA=".into(),
        };
        assert_eq!(
            BlockMapEntry::from_line(&entry.to_line()),
            Some(entry.clone())
        );
        assert_eq!(
            BlockMapEntry::from_line("7\t1\t2\t3\tx\ty"),
            None,
            "offset must match the index"
        );
        assert_eq!(
            BlockMapEntry::from_line(&format!("{}\textra", entry.to_line())),
            None
        );
    }
}
