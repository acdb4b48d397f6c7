//! The engine on the in-memory block source and store: hashes, layouts, resume, recovery.

use sha2::{Digest, Sha256};

use super::*;
use crate::limit::AdaptiveLimit;
use crate::memory::MemorySource;
use forensnap_core::layout::BlockMapEntry;
use forensnap_evidence::NoProgress;
use forensnap_store::MemoryStore;

fn options() -> AcquireOptions {
    AcquireOptions {
        window: 4,
        uploads: 2,
        // Parts of the smallest size S3 takes: 10 blocks (the tests count parts).
        part_bytes: 5 << 20,
        list_page: 100,
        policy: FetchPolicy {
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
            ..FetchPolicy::default()
        },
        layout: Layout::Blocks,
    }
}

/// Acquire with a generous limit and no progress reports.
async fn run_on<K: EvidenceWrite>(
    source: &MemorySource,
    sink: &K,
    options: &AcquireOptions,
    snapshot_id: &str,
    prefix: &str,
) -> Result<Acquired, AcquireError> {
    let limit = AdaptiveLimit::new(4, 8, 10_000.0);
    acquire(
        source,
        sink,
        &limit,
        options,
        snapshot_id,
        prefix,
        &NoProgress,
    )
    .await
}

/// The rows of a stored block map (its text, header skipped).
fn block_map_entries(map: Vec<u8>) -> Vec<BlockMapEntry> {
    String::from_utf8(map)
        .expect("utf8")
        .lines()
        .skip(1)
        .map(|l| BlockMapEntry::from_line(l).expect("line"))
        .collect()
}

fn expected_object(source: &MemorySource, indexes: &[u64]) -> Vec<u8> {
    indexes.iter().flat_map(|&i| source.block(i)).collect()
}

#[tokio::test]
async fn the_image_hash_equals_sha256sum_and_the_object_holds_the_listed_blocks() {
    let indexes = [3u64, 5, 6, 40, 63];
    let source = MemorySource::pattern(BLOCK_SIZE, 64, &indexes);
    source.corrupt(5, 2);
    source.throttle_next(3);
    let sink = MemoryStore::default();
    let got = run_on(&source, &sink, &options(), "snap-1", "cases/C/evidence/v1/")
        .await
        .expect("acquired");
    assert_eq!(
        got.image_sha256,
        hex::encode(Sha256::digest(source.raw_image()))
    );
    assert_eq!((got.blocks_stored, got.parts, got.discarded), (5, 1, 2));
    let object = sink
        .object("cases/C/evidence/v1/data/blocks.bin")
        .expect("object");
    assert_eq!(
        object,
        expected_object(&source, &indexes),
        "no corrupted byte stored"
    );
    let entries = block_map_entries(
        sink.object("cases/C/evidence/v1/data/blockmap.tsv")
            .expect("map"),
    );
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), indexes);
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(e.object_offset, n as u64 * BLOCK_SIZE);
        assert_eq!(e.sha256, hex::encode(Sha256::digest(source.block(e.index))));
    }
    assert_eq!(sink.open_uploads(), 0, "no multipart upload left open");
}

#[tokio::test]
async fn a_crashed_run_resumes_from_stored_parts_with_the_same_hashes() {
    // 25 data blocks, 10 per part (1 GiB volume): parts of 10, 10 and 5 blocks.
    let indexes: Vec<u64> = (0..25).map(|i| i * 70 + 1).collect();
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let uninterrupted = {
        let sink = MemoryStore::default();
        run_on(&source, &sink, &options(), "snap-1", "p/")
            .await
            .expect("acquired")
    };
    let sink = MemoryStore::default();
    sink.stop_at_part(3);
    let err = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("part 3 fails");
    assert!(
        err.to_string().contains("snap-1") && err.to_string().contains("UploadPart 3"),
        "{err}"
    );
    assert_eq!(
        sink.open_uploads(),
        1,
        "the upload stays open for the resume"
    );

    let before = source.gets.load(std::sync::atomic::Ordering::SeqCst);
    let resumed = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("resumed");
    let fetched = source.gets.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(resumed.resumed_parts, 2);
    assert_eq!(
        (resumed.fetched_now, fetched),
        (5, 5),
        "only the missing blocks are fetched again"
    );
    assert_eq!(resumed.image_sha256, uninterrupted.image_sha256);
    assert_eq!(resumed.composite_sha256, uninterrupted.composite_sha256);
    assert_eq!(
        sink.object("p/data/blocks.bin").expect("object"),
        expected_object(&source, &indexes)
    );
    assert_eq!(sink.open_uploads(), 0);
}

#[tokio::test]
async fn an_upload_opened_with_sha256_parts_resumes_with_sha256() {
    // An earlier version opened the upload with SHA-256 parts and stopped at part 3: the resume
    // keeps the upload's algorithm (S3 refuses a part in another), and S3's composite checksum
    // of the whole is checked as before.
    let indexes: Vec<u64> = (0..25).map(|i| i * 70 + 1).collect();
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let fresh = run_on(&source, &MemoryStore::default(), &options(), "snap-1", "p/")
        .await
        .expect("acquired");
    assert!(fresh.data_crc64nvme.is_some() && fresh.composite_sha256.is_none());
    let sink = MemoryStore::default();
    sink.create_uploads_with(forensnap_store::PartAlgorithm::Sha256);
    sink.stop_at_part(3);
    run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("part 3 fails");
    sink.create_uploads_with(forensnap_store::PartAlgorithm::Crc64Nvme);
    let resumed = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("resumed");
    assert_eq!(resumed.resumed_parts, 2);
    assert_eq!(
        (&resumed.image_sha256, &resumed.data_sha256),
        (&fresh.image_sha256, &fresh.data_sha256)
    );
    assert!(
        resumed
            .composite_sha256
            .as_deref()
            .is_some_and(|c| c.ends_with("-3")),
        "{:?}",
        resumed.composite_sha256
    );
    assert_eq!(resumed.data_crc64nvme, None);
    // The block map, uploaded after the switch, is a new upload with CRC-64/NVME parts.
    assert_eq!(
        sink.object("p/data/blocks.bin").expect("object"),
        expected_object(&source, &indexes)
    );
}

#[tokio::test]
async fn a_volume_with_data_only_in_its_last_block_and_an_empty_one() {
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &[2047]);
    let sink = MemoryStore::default();
    let got = run_on(&source, &sink, &options(), "snap-1", "a/")
        .await
        .expect("acquired");
    assert_eq!(
        got.image_sha256,
        hex::encode(Sha256::digest(source.raw_image()))
    );

    let empty = MemorySource::pattern(BLOCK_SIZE, 16, &[]);
    let got = run_on(&empty, &sink, &options(), "snap-2", "b/")
        .await
        .expect("acquired");
    assert_eq!(
        got.image_sha256,
        hex::encode(Sha256::digest(vec![0u8; 16 * BLOCK_SIZE as usize]))
    );
    assert_eq!(got.blocks_stored, 0);
}

#[tokio::test]
async fn the_raw_layout_stores_the_whole_image_with_the_same_hashes() {
    let indexes: Vec<u64> = vec![0, 1, 9, 10, 11, 30, 2047];
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let blocks_sink = MemoryStore::default();
    let blocks = run_on(&source, &blocks_sink, &options(), "snap-1", "b/")
        .await
        .expect("blocks layout");
    let raw_sink = MemoryStore::default();
    let raw_options = AcquireOptions {
        layout: Layout::Raw,
        ..options()
    };
    let raw = run_on(&source, &raw_sink, &raw_options, "snap-1", "r/")
        .await
        .expect("raw layout");
    let image = source.raw_image();
    assert_eq!(
        raw_sink.object("r/data/disk.raw").expect("raw object"),
        image
    );
    assert_eq!(raw.image_sha256, blocks.image_sha256);
    assert_eq!(raw.image_sha256, hex::encode(Sha256::digest(&image)));
    assert_eq!(
        raw.data_sha256, raw.image_sha256,
        "the raw object is the image"
    );
    assert_eq!((raw.data_bytes, raw.parts), (2048 * BLOCK_SIZE, 205));
    assert_eq!(raw.blocks_stored, indexes.len() as u64);
    let stored = blocks_sink
        .object("b/data/blocks.bin")
        .expect("blocks object");
    assert_eq!(blocks.data_sha256, hex::encode(Sha256::digest(&stored)));
    let map = raw_sink.object("r/data/blockmap.tsv").expect("map");
    assert_eq!(raw.block_map_sha256, hex::encode(Sha256::digest(&map)));
    let entries = block_map_entries(map);
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), indexes);
    assert!(
        entries.iter().all(|e| e.object_offset == e.offset),
        "raw: object offset = volume offset"
    );
}

#[tokio::test]
async fn a_finished_item_is_not_acquired_again_and_a_crash_before_the_marker_is_recovered() {
    let indexes: Vec<u64> = (0..25).map(|i| i * 3).collect();
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let sink = MemoryStore::default();
    let first = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("acquired");
    let gets = || source.gets.load(std::sync::atomic::Ordering::SeqCst);
    let before = gets();
    let again = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("marker");
    assert!(again.already_complete);
    assert_eq!(
        (again.image_sha256.as_str(), gets()),
        (first.image_sha256.as_str(), before),
        "nothing read again"
    );

    // Crash after CompleteMultipartUpload, before the block map and the marker.
    sink.remove(&marker_key("p/"));
    sink.remove("p/data/blockmap.tsv");
    let recovered = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("recovered");
    assert!(!recovered.already_complete);
    assert_eq!(recovered.fetched_now, 0, "no block fetched again");
    assert_eq!(
        (
            recovered.image_sha256,
            recovered.data_sha256,
            recovered.block_map_sha256
        ),
        (
            first.image_sha256,
            first.data_sha256,
            first.block_map_sha256
        )
    );
    assert_eq!(sink.open_uploads(), 0);

    let other = run_on(
        &source,
        &sink,
        &AcquireOptions {
            layout: Layout::Raw,
            ..options()
        },
        "snap-1",
        "p/",
    )
    .await
    .expect_err("a finished item is not acquired again differently");
    assert!(
        err_names(&other, "raw") || err_names(&other, "blocks layout"),
        "{other}"
    );
}

#[tokio::test]
async fn a_data_object_that_does_not_match_its_checkpoints_is_never_overwritten() {
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &[1, 2, 3]);
    let sink = MemoryStore::default();
    run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("acquired");
    sink.remove(&marker_key("p/"));
    sink.remove(&part_key("p/", 1));
    let err = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("refused");
    assert!(
        err_names(&err, "does not match its 0 part checkpoints")
            && err_names(&err, "p/data/blocks.bin"),
        "{err}"
    );
}

/// Change one character of the AWS checksum of the first block in the part checkpoint at `key`
/// (a checkpoint edited after the fact: the checksum no longer matches the block's SHA-256).
fn edit_first_aws_checksum(sink: &MemoryStore, key: &str) {
    let mut checkpoint: serde_json::Value =
        serde_json::from_slice(&sink.object(key).expect("checkpoint")).expect("json");
    let block = &mut checkpoint["blocks"][0];
    let mut edited = block[2].as_str().expect("aws checksum").as_bytes().to_vec();
    edited[0] = if edited[0] == b'A' { b'B' } else { b'A' };
    block[2] = serde_json::Value::from(String::from_utf8(edited).expect("base64 text"));
    sink.replace(key, serde_json::to_vec(&checkpoint).expect("json"));
}

fn err_names(err: &AcquireError, what: &str) -> bool {
    err.to_string().contains(what)
}

#[tokio::test]
async fn aws_checksum_matches_are_counted_and_a_checkpoint_whose_checksum_differs_is_refused() {
    let indexes: Vec<u64> = (0..12).map(|i| i * 5).collect();
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &indexes);
    let sink = MemoryStore::default();
    let first = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect("acquired");
    assert_eq!(first.aws_checksums_matched, Some(indexes.len() as u64));

    // A part checkpoint edited after the fact: one block's AWS checksum no longer matches our
    // SHA-256. Rebuilding the block map (after a crash before the marker) must refuse it.
    sink.remove(&marker_key("p/"));
    sink.remove("p/data/blockmap.tsv");
    edit_first_aws_checksum(&sink, &part_key("p/", 1));
    let err = run_on(&source, &sink, &options(), "snap-1", "p/")
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("1 of 12 blocks") && text.contains("AWS checksum"),
        "{text}"
    );
    assert!(
        sink.object("p/data/blockmap.tsv").is_none(),
        "no block map is written"
    );
}

mod block_map;
mod data_path;
mod pipeline;
mod store;

#[tokio::test]
async fn an_ebs_size_that_contradicts_ec2_is_refused_before_anything_is_read_or_stored() {
    // 2048 blocks of 512 KiB: 1 GiB, as EBS lists it; EC2 says 8 GiB.
    let source = MemorySource::pattern(BLOCK_SIZE, 2048, &[0, 5]);
    let sink = MemoryStore::default();
    let limit = AdaptiveLimit::new(4, 4, 1_000.0);
    let err = acquire_expecting(
        &source,
        &sink,
        Limits::single(&limit),
        &options(),
        "snap-1",
        "p/",
        &NoProgress,
        Some(8),
    )
    .await
    .expect_err("sizes differ");
    assert!(
        matches!(err, AcquireError::SizeMismatch { ebs_bytes, ec2_gib: 8, .. } if ebs_bytes == 1 << 30),
        "{err}"
    );
    assert!(
        err.to_string().contains("aws ebs list-snapshot-blocks"),
        "{err}"
    );
    assert_eq!(
        source.gets.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing read"
    );
    assert!(sink.keys("").is_empty(), "nothing stored");
    // The same size, as EC2 rounds it, is accepted.
    acquire_expecting(
        &source,
        &sink,
        Limits::single(&limit),
        &options(),
        "snap-1",
        "p/",
        &NoProgress,
        Some(1),
    )
    .await
    .expect("sizes agree");
}
