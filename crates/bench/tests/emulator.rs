//! The benchmark's EBS emulator is faithful enough to measure: forensnap's real adapter (the AWS
//! SDK over loopback HTTP) and engine read a synthetic snapshot from it, under throttling, and the
//! image SHA-256 equals the one computed from the emulator's own blocks.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use forensnap_acquire::{AcquireOptions, AdaptiveLimit, FetchPolicy, acquire};
use forensnap_aws::EbsSource;
use forensnap_emulator::{Emulator, Snapshot, block};
use forensnap_evidence::NoProgress;
use forensnap_store::MemoryStore;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn the_real_adapter_reads_a_synthetic_snapshot_under_throttling() {
    let snapshot = Snapshot::spread("snap-emu0001", 1, 40);
    let emulator = Emulator::start(vec![snapshot.clone()], 0.3)
        .await
        .expect("emulator");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIATEST", "test", None, None, "test"))
        .load()
        .await;
    let source = EbsSource::new(&sdk, Some(&emulator.url()));
    let sink = MemoryStore::default();
    let limit = AdaptiveLimit::new(4, 8, 1_000.0);
    let options = AcquireOptions {
        list_page: 100,
        policy: FetchPolicy {
            max_attempts: 30,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
            ..FetchPolicy::default()
        },
        ..AcquireOptions::default()
    };
    let got = acquire(
        &source,
        &sink,
        &limit,
        &options,
        "snap-emu0001",
        "e/",
        &NoProgress,
    )
    .await
    .expect("acquired");

    let mut image = Sha256::new();
    let mut at = 0u64;
    for &index in &snapshot.blocks {
        image.update(vec![0u8; ((index - at) * 524_288) as usize]);
        image.update(block(index));
        at = index + 1;
    }
    image.update(vec![0u8; ((2048 - at) * 524_288) as usize]);
    assert_eq!(got.image_sha256, hex(image.finalize().as_slice()));
    assert_eq!(got.blocks_stored, 40);
    assert_eq!(
        sink.object("e/data/blocks.bin").expect("object").len(),
        40 * 524_288
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
