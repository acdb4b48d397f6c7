//! Fault injection in the local world, switched on and off at run time per service and
//! operation: throttling, 5xx, dropped connections, latency and corrupted EBS blocks.

use std::time::{Duration, Instant};

use aws_sdk_ebs::error::ProvideErrorMetadata;
use forensnap_tests::localworld::{FaultKind, FaultRule};
use forensnap_tests::*;

fn env() -> Env {
    Env::new(&world_toml(
        "ev-faults",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 4 }",
        ],
    ))
}

/// The member snapshot, copied into the forensic account; returns (snapshot id, first block token).
async fn readable_snapshot(env: &Env) -> (String, String) {
    let id = forensic_copy(env, 0).await;
    let ebs = aws_sdk_ebs::Client::new(&env.forensic().await);
    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(&id)
        .send()
        .await
        .expect("list");
    let token = page.blocks()[0].block_token().expect("token").to_string();
    (id, token)
}

async fn get_block(
    ebs: &aws_sdk_ebs::Client,
    id: &str,
    token: &str,
) -> Result<(String, Vec<u8>), String> {
    let out = ebs
        .get_snapshot_block()
        .snapshot_id(id)
        .block_index(0)
        .block_token(token)
        .send()
        .await
        .map_err(|e| {
            e.code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{e:?}"))
        })?;
    let checksum = out.checksum().expect("checksum").to_string();
    Ok((
        checksum,
        out.block_data
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
    ))
}

#[tokio::test]
async fn throttling_is_the_services_own_error_and_switches_off() {
    let env = env();
    let (id, token) = readable_snapshot(&env).await;
    let cfg = env.forensic().await;
    let ebs = ebs_no_retry(&cfg);
    env.world
        .add_fault(&FaultRule::new(FaultKind::Throttle, "ebs", "GetSnapshotBlock").count(2))
        .expect("fault on");
    let err = ebs
        .get_snapshot_block()
        .snapshot_id(&id)
        .block_index(0)
        .block_token(&token)
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("RequestThrottledException"));
    // The SDK's standard retries get through the second (and last) injected throttle.
    get_block(&aws_sdk_ebs::Client::new(&cfg), &id, &token)
        .await
        .expect("retried");
    let stats = env.world.faults().expect("stats");
    assert_eq!(
        (stats[0].matched, stats[0].fired),
        (3, 2),
        "two throttled, the third served"
    );

    // Other services throttle in their own words; clearing switches every fault off.
    env.world
        .add_fault(&FaultRule::new(FaultKind::Throttle, "s3", "*"))
        .expect("s3 fault");
    let err = s3_no_retry(&cfg)
        .list_buckets()
        .send()
        .await
        .expect_err("SlowDown");
    assert_eq!(err.code(), Some("SlowDown"));
    env.world.clear_faults().expect("clear");
    s3_no_retry(&cfg)
        .list_buckets()
        .send()
        .await
        .expect("fault cleared");
    ebs.get_snapshot_block()
        .snapshot_id(&id)
        .block_index(0)
        .block_token(&token)
        .send()
        .await
        .expect("fault cleared");
}

#[tokio::test]
async fn five_hundreds_and_dropped_connections() {
    let env = env();
    let (id, _) = readable_snapshot(&env).await;
    let cfg = env.forensic().await;
    let ebs = ebs_no_retry(&cfg);
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Error, "ebs", "ListSnapshotBlocks")
                .status(503)
                .count(1),
        )
        .expect("fault");
    let err = ebs
        .list_snapshot_blocks()
        .snapshot_id(&id)
        .send()
        .await
        .expect_err("503");
    assert_eq!(err.code(), Some("InternalServerException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    ebs.list_snapshot_blocks()
        .snapshot_id(&id)
        .send()
        .await
        .expect("count exhausted");

    env.world
        .add_fault(&FaultRule::new(FaultKind::Drop, "s3", "ListBuckets").count(1))
        .expect("fault");
    let err = s3_no_retry(&cfg)
        .list_buckets()
        .send()
        .await
        .expect_err("dropped");
    assert!(
        err.raw_response().is_none(),
        "no HTTP response at all: {err:?}"
    );
    s3_no_retry(&cfg)
        .list_buckets()
        .send()
        .await
        .expect("next connection works");
}

#[tokio::test]
async fn latency_delays_only_the_chosen_operation() {
    let env = env();
    let cfg = env.forensic().await;
    let sts = aws_sdk_sts::Client::new(&cfg);
    env.world
        .add_fault(&FaultRule::new(FaultKind::Latency, "sts", "GetCallerIdentity").latency_ms(400))
        .expect("fault");
    let started = Instant::now();
    sts.get_caller_identity()
        .send()
        .await
        .expect("slow but served");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let stats = env.world.faults().expect("stats");
    assert_eq!(stats[0].fired, 1);
    s3(&cfg)
        .list_buckets()
        .send()
        .await
        .expect("other calls unaffected");
    assert_eq!(env.world.faults().expect("stats")[0].matched, 1);
}

#[tokio::test]
async fn corrupted_blocks_no_longer_match_their_checksum() {
    let env = env();
    let (id, token) = readable_snapshot(&env).await;
    let ebs = ebs_no_retry(&env.forensic().await);
    let (checksum, data) = get_block(&ebs, &id, &token).await.expect("clean");
    assert_eq!(b64_sha256(&data), checksum);

    env.world
        .add_fault(&FaultRule::new(
            FaultKind::Corrupt,
            "ebs",
            "GetSnapshotBlock",
        ))
        .expect("fault");
    let (bad_checksum, bad) = get_block(&ebs, &id, &token)
        .await
        .expect("served, corrupted");
    assert_eq!(
        bad_checksum, checksum,
        "AWS's checksum still describes the true bytes"
    );
    assert_eq!(bad.len(), data.len());
    assert_ne!(b64_sha256(&bad), checksum, "the bytes no longer match");
    assert_eq!(
        bad.iter().zip(&data).filter(|(a, b)| a != b).count(),
        1,
        "one byte flipped"
    );

    env.world.clear_faults().expect("clear");
    let (_, again) = get_block(&ebs, &id, &token).await.expect("clean again");
    assert_eq!(again, data);
}

#[tokio::test]
async fn a_probability_picks_some_requests_repeatably() {
    let env = env();
    let cfg = env.forensic().await;
    let s3 = s3_no_retry(&cfg);
    env.world
        .add_fault(&FaultRule::new(FaultKind::Throttle, "s3", "ListBuckets").probability(0.5, 7))
        .expect("fault");
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        outcomes.push(s3.list_buckets().send().await.is_ok());
    }
    let throttled = outcomes.iter().filter(|ok| !**ok).count();
    assert!((5..=35).contains(&throttled), "{throttled} of 40");
    let stats = env.world.faults().expect("stats");
    assert_eq!(stats[0].fired as usize, throttled);

    // The same seed picks the same requests.
    env.world.clear_faults().expect("clear");
    env.world
        .add_fault(&FaultRule::new(FaultKind::Throttle, "s3", "ListBuckets").probability(0.5, 7))
        .expect("fault");
    let mut again = Vec::new();
    for _ in 0..40 {
        again.push(s3.list_buckets().send().await.is_ok());
    }
    assert_eq!(outcomes, again);
    let bad = env
        .world
        .add_fault(&FaultRule::new(FaultKind::Corrupt, "s3", "PutObject"));
    assert!(
        bad.is_err(),
        "corrupt applies to GetSnapshotBlock and UploadPart only"
    );
}

#[tokio::test]
async fn the_acquisition_reader_rides_out_throttling_5xx_and_corruption() {
    use forensnap_acquire::listing::Lister;
    use forensnap_acquire::{AdaptiveLimit, FetchPolicy, fetch_verified};
    use forensnap_core::hashing::ImageHasher;
    use futures_free::collect_pages;

    let env = Env::new(&world_toml(
        "ev-acq-faults",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 40, offset_blocks = 5 }",
        ],
    ));
    let snapshot = forensic_copy(&env, 0).await;
    let source = forensnap_aws::EbsSource::new(&env.forensic().await, None);
    for rule in [
        FaultRule::new(FaultKind::Throttle, "ebs", "GetSnapshotBlock").probability(0.2, 1),
        FaultRule::new(FaultKind::Error, "ebs", "GetSnapshotBlock")
            .status(503)
            .probability(0.1, 2),
        FaultRule::new(FaultKind::Corrupt, "ebs", "GetSnapshotBlock").probability(0.2, 3),
        FaultRule::new(FaultKind::Throttle, "ebs", "ListSnapshotBlocks").count(1),
    ] {
        env.world.add_fault(&rule).expect("fault on");
    }
    let limit = AdaptiveLimit::new(4, 16, 1_000.0);
    let policy = FetchPolicy {
        max_attempts: 30,
        corrupt_refetches: 10,
        ..FetchPolicy::default()
    };
    let pages = collect_pages(&mut Lister::new(&snapshot, 0, 100), &source).await;
    let mut hasher = ImageHasher::new(pages.0);
    for block in &pages.1 {
        let got = fetch_verified(&source, &limit, &policy, &snapshot, block)
            .await
            .expect("verified despite faults");
        hasher
            .block(block.index * forensnap_core::layout::BLOCK_SIZE, &got.data)
            .expect("in order");
    }
    assert_eq!(
        hasher.finish(),
        env.seeded.member().instances[0].volumes[0].image_sha256
    );
    let stats = env.world.faults().expect("stats");
    assert!(
        stats
            .iter()
            .filter(|s| s.operation == "GetSnapshotBlock")
            .all(|s| s.fired > 0),
        "every fault fired: {stats:?}"
    );
}

/// Listing with retries on throttling, as the engine does.
mod futures_free {
    use forensnap_acquire::listing::Lister;
    use forensnap_acquire::{BlockSource, ListedBlock, SourceError};

    pub async fn collect_pages<S: BlockSource>(
        lister: &mut Lister,
        source: &S,
    ) -> (u64, Vec<ListedBlock>) {
        let mut volume = 0;
        let mut blocks = Vec::new();
        for _ in 0..1_000 {
            match lister.next(source).await {
                Ok(Some(page)) => {
                    volume = page.volume_bytes;
                    blocks.extend(page.blocks);
                }
                Ok(None) => return (volume, blocks),
                Err(SourceError::Throttled(..)) | Err(SourceError::Transient(_)) => continue,
                Err(e) => panic!("listing failed: {e}"),
            }
        }
        panic!("listing did not end");
    }
}
