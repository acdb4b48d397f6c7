//! The acquisition record of a volume: what the engine stored, with every hash, as written in the
//! item's completion marker (`acquisition/complete.json`) and read back to seal the bag.

use forensnap_core::layout::Layout;

/// What was acquired (also the completion marker's content).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acquired {
    /// Snapshot read.
    pub snapshot_id: String,
    /// Logical volume size.
    pub volume_bytes: u64,
    /// What the data object holds.
    pub layout: Layout,
    /// SHA-256 of the whole logical volume (= `sha256sum` of the raw image), hex.
    pub image_sha256: String,
    /// Blocks stored (listed by EBS).
    pub blocks_stored: u64,
    /// Parts of the data object.
    pub parts: u32,
    /// Key of the data object.
    pub data_key: String,
    /// Bytes of the data object.
    pub data_bytes: u64,
    /// SHA-256 of the data object, hex (the bag manifest's entry).
    pub data_sha256: String,
    /// Key of the block map.
    pub block_map_key: String,
    /// Bytes of the block map.
    pub block_map_bytes: u64,
    /// SHA-256 of the block map, hex.
    pub block_map_sha256: String,
    /// Blocks of the block map whose AWS checksum equals our SHA-256, counted when the block
    /// map was assembled (`None` in markers written before the count existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_checksums_matched: Option<u64>,
    /// Version of the data object.
    pub version_id: Option<String>,
    /// S3's composite checksum of the data object (uploads with SHA-256 parts).
    pub composite_sha256: Option<String>,
    /// S3's CRC-64/NVME of the whole data object, base64 (uploads with CRC-64/NVME parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_crc64nvme: Option<String>,
    /// Parts found stored from an earlier run.
    pub resumed_parts: u32,
    /// Blocks fetched by this run.
    pub fetched_now: u64,
    /// Answers discarded for not matching AWS's checksum.
    pub discarded: u64,
    /// An earlier run had finished: nothing was read or written now.
    #[serde(default)]
    pub already_complete: bool,
}
