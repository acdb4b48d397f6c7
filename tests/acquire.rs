//! Acquisition end to end against the local AWS world: a forensic-account snapshot read through
//! the EBS direct APIs (verified), streamed into an Object Lock multipart object, and rebuilt
//! from S3 into a raw image whose SHA-256 equals the seeded image's.

use std::io::{Seek, SeekFrom, Write};

use forensnap_acquire::{AcquireOptions, AdaptiveLimit, acquire};
use forensnap_aws::{EbsSource, S3Store};
use forensnap_core::layout::{BLOCK_SIZE, BlockMapEntry};
use forensnap_evidence::Acquired;
use forensnap_tests::localworld::{FaultKind, FaultRule};
use forensnap_tests::*;
use sha2::{Digest, Sha256};

fn env() -> Env {
    Env::new(&world_toml(
        "ev-acquire",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 25, offset_blocks = 3 }",
            "device = \"/dev/xvdf\"\nimage = \"last.img\"\nsize_gib = 1\nbuild = { kind = \"pattern\", blocks = 1, offset_blocks = 2047 }",
        ],
    ))
}

async fn run(
    env: &Env,
    snapshot: &str,
    prefix: &str,
) -> Result<Acquired, forensnap_acquire::AcquireError> {
    run_with(env, snapshot, prefix, AcquireOptions::default().uploads).await
}

/// Acquire with `uploads` parts uploading at once.
async fn run_with(
    env: &Env,
    snapshot: &str,
    prefix: &str,
    uploads: usize,
) -> Result<Acquired, forensnap_acquire::AcquireError> {
    let cfg = env.forensic().await;
    let source = EbsSource::new(&cfg, None);
    let sink = S3Store::new(s3(&cfg), &env.seeded.forensic.evidence_bucket, false);
    let limit = AdaptiveLimit::new(4, 16, 1_000.0);
    acquire(
        &source,
        &sink,
        &limit,
        &AcquireOptions {
            // The smallest parts S3 takes (10 blocks), so that small volumes have several.
            part_bytes: 5 << 20,
            uploads,
            ..AcquireOptions::default()
        },
        snapshot,
        prefix,
        &forensnap_evidence::NoProgress,
    )
    .await
}

async fn object(env: &Env, key: &str) -> Vec<u8> {
    let s3 = s3(&env.forensic().await);
    get_bytes(&s3, &env.seeded.forensic.evidence_bucket, key).await
}

/// Rebuild the raw image from the stored blocks and the block map (as an auditor would with
/// dd), and return `sha256sum` of it.
async fn rebuilt_sha256(env: &Env, got: &Acquired) -> String {
    let blocks = object(env, &got.data_key).await;
    let map = String::from_utf8(object(env, &got.block_map_key).await).expect("utf8 map");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("disk.raw");
    let mut file = std::fs::File::create(&path).expect("raw");
    file.set_len(got.volume_bytes).expect("sparse file");
    for line in map.lines().filter(|l| !l.starts_with('#')) {
        let entry = BlockMapEntry::from_line(line).expect("map line");
        let data =
            &blocks[entry.object_offset as usize..(entry.object_offset + BLOCK_SIZE) as usize];
        assert_eq!(
            hex::encode(Sha256::digest(data)),
            entry.sha256,
            "block {} as stored",
            entry.index
        );
        file.seek(SeekFrom::Start(entry.offset)).expect("seek");
        file.write_all(data).expect("write");
    }
    drop(file);
    let mut hasher = Sha256::new();
    let mut raw = std::fs::File::open(&path).expect("open");
    std::io::copy(&mut raw, &mut hasher).expect("hash");
    hex::encode(hasher.finalize())
}

#[tokio::test]
async fn a_seeded_image_comes_back_from_s3_with_its_sha256() {
    let env = env();
    for (n, volume) in env.seeded.member().instances[0]
        .volumes
        .clone()
        .iter()
        .enumerate()
    {
        let snapshot = forensic_copy(&env, n).await;
        let prefix = format!("cases/IR-A/evidence/{}/", volume.volume_id);
        let got = run(&env, &snapshot, &prefix).await.expect("acquired");
        assert_eq!(got.image_sha256, volume.image_sha256, "{}", volume.device);
        assert_eq!(got.blocks_stored, volume.data_blocks);
        assert_eq!(
            rebuilt_sha256(&env, &got).await,
            volume.image_sha256,
            "rebuilt from S3 alone"
        );
        let s3 = s3(&env.forensic().await);
        let bucket = &env.seeded.forensic.evidence_bucket;
        // New uploads carry CRC-64/NVME parts: S3 (the world, from the bytes it holds) reports
        // the whole object's CRC, which the engine combined from the parts and checked.
        assert_eq!(got.composite_sha256, None);
        assert_eq!(
            got.data_crc64nvme,
            object_crc64nvme(&s3, bucket, &got.data_key).await,
            "the whole object's CRC-64/NVME"
        );
        assert_eq!(
            Some(assert_locked(&s3, bucket, &got.data_key).await),
            got.version_id,
            "the version acquired is the one locked"
        );
        let open = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .expect("uploads");
        assert!(open.uploads().is_empty(), "no multipart upload left open");
    }
}

#[tokio::test]
async fn throttling_5xx_and_corruption_during_a_run_store_no_corrupted_byte() {
    let env = env();
    let snapshot = forensic_copy(&env, 0).await;
    for rule in [
        FaultRule::new(FaultKind::Throttle, "ebs", "GetSnapshotBlock").probability(0.25, 11),
        FaultRule::new(FaultKind::Error, "ebs", "GetSnapshotBlock")
            .status(503)
            .probability(0.1, 12),
        FaultRule::new(FaultKind::Corrupt, "ebs", "GetSnapshotBlock").probability(0.25, 13),
    ] {
        env.world.add_fault(&rule).expect("fault");
    }
    let got = run(&env, &snapshot, "cases/IR-F/evidence/root/")
        .await
        .expect("acquired despite faults");
    let volume = &env.seeded.member().instances[0].volumes[0];
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert!(
        got.discarded > 0,
        "corrupted answers were seen and discarded"
    );
    assert_eq!(
        rebuilt_sha256(&env, &got).await,
        volume.image_sha256,
        "no corrupted byte stored"
    );
    let fired = |kind: FaultKind| -> u64 {
        env.world
            .faults()
            .expect("fault stats")
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.fired)
            .sum()
    };
    summary(
        "faults-acquire",
        &format!(
            "faults during acquisition: {} throttles, {} 503s and {} corruptions injected into GetSnapshotBlock \
             (a corruption on an answer also throttled or failed never arrives); survived: image equal to the seeded one, \
             {} corrupted answers received and discarded, no corrupted byte stored",
            fired(FaultKind::Throttle),
            fired(FaultKind::Error),
            fired(FaultKind::Corrupt),
            got.discarded
        ),
    );
}

#[tokio::test]
async fn a_run_killed_part_way_resumes_with_identical_hashes_and_no_open_upload() {
    let env = env();
    let snapshot = forensic_copy(&env, 0).await;
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    // 25 data blocks in a 1 GiB volume: parts of 10, 10 and 5 blocks. Every UploadPart after
    // the first hangs; once part 1's checkpoint is stored, the run is dropped mid-flight (as a
    // killed process stops: no error path, nothing cleaned up).
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Latency, "s3", "UploadPart")
                .after(1)
                .latency_ms(20_000),
        )
        .expect("fault");
    let prefix = "cases/IR-K/evidence/root/";
    let checkpoint = forensnap_core::ItemLayout::at(prefix).part_checkpoint(1);
    let first_part_stored = async {
        let s3 = s3(&env.forensic().await);
        for _ in 0..600 {
            let head = s3
                .head_object()
                .bucket(&env.seeded.forensic.evidence_bucket)
                .key(&checkpoint)
                .send()
                .await;
            if head.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("part 1 was never checkpointed");
    };
    // One part uploading at a time, so that part 1 is the first UploadPart (the fault counts
    // requests in the order they arrive).
    tokio::select! {
        done = run_with(&env, &snapshot, prefix, 1) => panic!("the run ended before it was killed: {done:?}"),
        () = first_part_stored => {}
    }
    env.world.clear_faults().expect("clear");
    let got = run(&env, &snapshot, "cases/IR-K/evidence/root/")
        .await
        .expect("resumed");
    assert_eq!(got.resumed_parts, 1);
    assert_eq!(
        got.fetched_now, 15,
        "only the blocks of the missing parts are fetched again"
    );
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert_eq!(rebuilt_sha256(&env, &got).await, volume.image_sha256);
    assert_eq!(open_uploads(&env).await, 0, "no multipart upload left open");
}

#[tokio::test]
async fn a_run_killed_between_its_completed_object_and_its_marker_recovers_through_head_object() {
    let env = env();
    let snapshot = forensic_copy(&env, 0).await;
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    // Parts of 10, 10 and 5 blocks: three checkpoint PutObjects, the data object and the block
    // map completed, then the completion marker, the fourth PutObject: it hangs, and the run is
    // dropped once the block map exists.
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Latency, "s3", "PutObject")
                .after(3)
                .latency_ms(20_000),
        )
        .expect("fault");
    let prefix = "cases/IR-M/evidence/root/";
    let block_map = format!("{prefix}data/blockmap.tsv");
    let block_map_stored = async {
        let s3 = s3(&env.forensic().await);
        for _ in 0..600 {
            let head = s3
                .head_object()
                .bucket(&env.seeded.forensic.evidence_bucket)
                .key(&block_map)
                .send()
                .await;
            if head.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the block map was never stored");
    };
    tokio::select! {
        done = run(&env, &snapshot, prefix) => panic!("the run ended before it was killed: {done:?}"),
        () = block_map_stored => {}
    }
    env.world.clear_faults().expect("clear");
    // The object exists: HeadObject's CRC-64/NVME of the whole object must be the one the
    // three checkpointed parts combine into, or the run would refuse the object.
    let got = run(&env, &snapshot, prefix).await.expect("recovered");
    assert_eq!((got.resumed_parts, got.fetched_now), (3, 0));
    let s3 = s3(&env.forensic().await);
    assert_eq!(
        got.data_crc64nvme,
        object_crc64nvme(&s3, &env.seeded.forensic.evidence_bucket, &got.data_key).await
    );
    assert!(got.data_crc64nvme.is_some());
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert_eq!(rebuilt_sha256(&env, &got).await, volume.image_sha256);
}

#[tokio::test]
async fn a_volume_listed_over_several_pages_comes_back_whole() {
    // 130 data blocks listed 100 per page: the lister continues by block index over two pages.
    let env = Env::new(&world_toml(
        "ev-acquire-pages",
        &[
            "device = \"/dev/xvda\"\nimage = \"paged.img\"\nbuild = { kind = \"pattern\", blocks = 130, offset_blocks = 7 }",
        ],
    ));
    let snapshot = forensic_copy(&env, 0).await;
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    let cfg = env.forensic().await;
    let source = EbsSource::new(&cfg, None);
    let sink = S3Store::new(s3(&cfg), &env.seeded.forensic.evidence_bucket, false);
    let limit = AdaptiveLimit::new(4, 16, 1_000.0);
    let options = AcquireOptions {
        list_page: 100,
        ..AcquireOptions::default()
    };
    let got = acquire(
        &source,
        &sink,
        &limit,
        &options,
        &snapshot,
        "cases/IR-P/evidence/paged/",
        &forensnap_evidence::NoProgress,
    )
    .await
    .expect("acquired");
    assert_eq!(got.blocks_stored, 130);
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert_eq!(rebuilt_sha256(&env, &got).await, volume.image_sha256);
}

/// The whole object's CRC-64/NVME as S3 reports it (HeadObject, checksum mode on).
async fn object_crc64nvme(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.checksum_type().map(|t| t.as_str()),
        Some("FULL_OBJECT"),
        "{key}"
    );
    head.checksum_crc64_nvme().map(str::to_string)
}

#[tokio::test]
async fn an_upload_opened_with_sha256_by_an_earlier_version_completes_with_sha256_parts() {
    // An earlier forensnap opened the data upload with SHA-256 parts and stopped: S3 fixed the
    // algorithm then, so the run resumes the upload with SHA-256 parts (a CRC-64/NVME part
    // would be refused) and S3 answers the composite checksum, which the engine checks.
    let env = env();
    let snapshot = forensic_copy(&env, 0).await;
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    let prefix = "cases/IR-OLD/evidence/root/";
    let data_key = forensnap_core::ItemLayout::at(prefix)
        .file(forensnap_core::layout::Layout::Blocks.data_path());
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(&data_key)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("an upload opened the old way");
    let got = run(&env, &snapshot, prefix).await.expect("acquired");
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert_eq!(got.data_crc64nvme, None);
    assert!(
        got.composite_sha256
            .as_deref()
            .is_some_and(|c| c.ends_with(&format!("-{}", got.parts))),
        "{:?}",
        got.composite_sha256
    );
    assert_eq!(rebuilt_sha256(&env, &got).await, volume.image_sha256);
    let open = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("uploads");
    assert!(open.uploads().is_empty(), "no upload left open");
}

#[tokio::test]
async fn a_part_checksum_s3_echoes_differently_is_refused_and_the_rerun_reads_that_part_again() {
    let env = env();
    let snapshot = forensic_copy(&env, 0).await;
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    // The second part is stored, but S3's answer names another checksum than the one sent.
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Corrupt, "s3", "UploadPart")
                .after(1)
                .count(1),
        )
        .expect("fault");
    let prefix = "cases/IR-ECHO/evidence/root/";
    let err = run(&env, &snapshot, prefix)
        .await
        .expect_err("an echo that is not the part sent is refused");
    let text = err.to_string();
    assert!(
        text.contains("UploadPart") && text.contains("S3 reports"),
        "the refusal names the call and both checksums: {text}"
    );
    env.world.clear_faults().expect("clear");
    let got = run(&env, &snapshot, prefix).await.expect("resumed");
    assert_eq!(got.image_sha256, volume.image_sha256);
    assert_eq!(rebuilt_sha256(&env, &got).await, volume.image_sha256);
    assert_eq!(open_uploads(&env).await, 0, "no multipart upload left open");
}
