//! The EBS stand-in through the real aws-sdk-ebs client over loopback HTTP: blocks match their
//! checksums, listings page, quotas refuse with the reason AWS gives and never admit more than
//! rate x elapsed + burst, latency is a lower bound on every answer, and the counters count.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ebs::error::ProvideErrorMetadata;
use aws_sdk_ebs::operation::get_snapshot_block::GetSnapshotBlockError;
use aws_sdk_ebs::types::RequestThrottledExceptionReason;
use base64::Engine as _;
use forensnap_emulator::{
    BLOCK_SIZE, EbsConfig, Emulator, EmulatorConfig, Latency, Layout, Quota, Snapshot,
    StatsSnapshot, block,
};
use sha2::{Digest, Sha256};

/// A 1 GiB snapshot whose every block holds data (so block `i` has token `t{i}`).
fn full(id: &str) -> Snapshot {
    Snapshot::allocated(id, 1, 100.0, Layout::Even)
}

async fn launch(ebs: EbsConfig) -> Emulator {
    Emulator::launch(EmulatorConfig {
        ebs,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator")
}

/// What one GetSnapshotBlock came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Served,
    Throttled(RequestThrottledExceptionReason),
    Other(String),
}

async fn read(client: &aws_sdk_ebs::Client, snapshot: &str, index: i32) -> Outcome {
    match client
        .get_snapshot_block()
        .snapshot_id(snapshot)
        .block_index(index)
        .block_token(format!("t{index}"))
        .send()
        .await
    {
        Ok(out) => {
            let data = out.block_data.collect().await.expect("body").into_bytes();
            assert_eq!(data.len(), BLOCK_SIZE);
            Outcome::Served
        }
        Err(e) => match e.into_service_error() {
            GetSnapshotBlockError::RequestThrottledException(t) => {
                Outcome::Throttled(t.reason().cloned().expect("a throttle carries its reason"))
            }
            other => Outcome::Other(format!("{other:?}")),
        },
    }
}

/// `n` concurrent reads spread over `snapshots`.
async fn burst(client: &aws_sdk_ebs::Client, snapshots: &[&str], n: usize) -> Vec<Outcome> {
    futures::future::join_all(
        (0..n).map(|i| read(client, snapshots[i % snapshots.len()], i as i32)),
    )
    .await
}

#[tokio::test]
async fn blocks_match_their_checksums_and_listings_page() {
    let snapshot = Snapshot::spread("snap-list", 1, 250);
    let emulator = launch(EbsConfig::new(vec![snapshot.clone()])).await;
    let client = common::ebs(&emulator.url());

    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    for _ in 0..10 {
        let page = client
            .list_snapshot_blocks()
            .snapshot_id("snap-list")
            .max_results(100)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("listing");
        pages += 1;
        assert_eq!(page.volume_size(), Some(1));
        assert_eq!(page.block_size(), Some(BLOCK_SIZE as i32));
        listed.extend(page.blocks().iter().map(|b| {
            (
                b.block_index().expect("index") as u64,
                b.block_token().expect("token").to_string(),
            )
        }));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        listed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        snapshot.blocks
    );

    let from_middle = client
        .list_snapshot_blocks()
        .snapshot_id("snap-list")
        .starting_block_index(snapshot.blocks[120] as i32)
        .max_results(100)
        .send()
        .await
        .expect("listing from an index");
    assert_eq!(
        from_middle.blocks()[0].block_index(),
        Some(snapshot.blocks[120] as i32)
    );

    for (index, token) in listed.iter().take(5) {
        let out = client
            .get_snapshot_block()
            .snapshot_id("snap-list")
            .block_index(*index as i32)
            .block_token(token)
            .send()
            .await
            .expect("block");
        assert_eq!(out.checksum_algorithm().map(|a| a.as_str()), Some("SHA256"));
        assert_eq!(out.data_length(), Some(BLOCK_SIZE as i32));
        let checksum = out.checksum().expect("checksum").to_string();
        let data = out.block_data.collect().await.expect("body").into_bytes();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data)),
            checksum
        );
        assert_eq!(data.as_ref(), block(*index).as_slice());
    }

    let bad_token = client
        .get_snapshot_block()
        .snapshot_id("snap-list")
        .block_index(listed[0].0 as i32)
        .block_token("not-a-token")
        .send()
        .await
        .expect_err("a made-up token");
    assert_eq!(bad_token.code(), Some("ValidationException"));
    let missing = client
        .list_snapshot_blocks()
        .snapshot_id("snap-missing")
        .send()
        .await
        .expect_err("no such snapshot");
    assert!(
        missing
            .into_service_error()
            .is_resource_not_found_exception()
    );
    let too_small = client
        .list_snapshot_blocks()
        .snapshot_id("snap-list")
        .max_results(10)
        .send()
        .await
        .expect_err("MaxResults below AWS's 100");
    assert_eq!(too_small.code(), Some("ValidationException"));
}

#[tokio::test]
async fn a_snapshot_quota_throttles_a_burst_and_admits_no_more_than_rate_times_time_plus_burst() {
    let (rate, burst_size) = (5.0, 2.0);
    let emulator = launch(EbsConfig {
        snapshot_quota: Some(Quota {
            rate,
            burst: burst_size,
        }),
        ..EbsConfig::new(vec![full("snap-q")])
    })
    .await;
    let client = common::ebs(&emulator.url());
    let started = Instant::now();
    let mut outcomes = burst(&client, &["snap-q"], 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    outcomes.extend(burst(&client, &["snap-q"], 30).await);
    let elapsed = started.elapsed().as_secs_f64();

    let served = outcomes.iter().filter(|o| **o == Outcome::Served).count();
    let throttled = outcomes
        .iter()
        .filter(|o| {
            **o == Outcome::Throttled(RequestThrottledExceptionReason::ResourceLevelThrottle)
        })
        .count();
    assert_eq!(
        served + throttled,
        60,
        "only served or throttled: {outcomes:?}"
    );
    assert!(served >= 1);
    assert!(
        served as f64 <= rate * elapsed + burst_size + 1e-9,
        "{served} served in {elapsed:.3} s at {rate}/s with a burst of {burst_size}"
    );
    // 60 requests would need 11.6 s at this rate: some were refused on any machine.
    if elapsed < (60.0 - burst_size) / rate {
        assert!(throttled > 0);
    }
    let stats = emulator.stats().get_snapshot_block;
    assert_eq!(stats.served, served as u64);
    assert_eq!(stats.throttled_resource, throttled as u64);
    assert_eq!(stats.throttled_account, 0);
}

#[tokio::test]
async fn the_account_quota_is_shared_by_two_snapshots() {
    let (rate, burst_size) = (5.0, 3.0);
    let emulator = launch(EbsConfig {
        account_quota: Some(Quota {
            rate,
            burst: burst_size,
        }),
        ..EbsConfig::new(vec![full("snap-a"), full("snap-b")])
    })
    .await;
    let client = common::ebs(&emulator.url());
    let started = Instant::now();
    let outcomes = burst(&client, &["snap-a", "snap-b"], 24).await;
    let elapsed = started.elapsed().as_secs_f64();
    let served = outcomes.iter().filter(|o| **o == Outcome::Served).count();
    let throttled = outcomes
        .iter()
        .filter(|o| **o == Outcome::Throttled(RequestThrottledExceptionReason::AccountThrottled))
        .count();
    assert_eq!(served + throttled, 24, "{outcomes:?}");
    assert!(served as f64 <= rate * elapsed + burst_size + 1e-9);
    if elapsed < (24.0 - burst_size) / rate {
        assert!(throttled > 0);
    }
}

#[tokio::test]
async fn the_listing_quota_throttles_listings() {
    let emulator = launch(EbsConfig {
        list_quota: Some(Quota {
            rate: 0.01,
            burst: 1.0,
        }),
        ..EbsConfig::new(vec![Snapshot::spread("snap-l", 1, 8)])
    })
    .await;
    let client = common::ebs(&emulator.url());
    let list = || client.list_snapshot_blocks().snapshot_id("snap-l").send();
    list().await.expect("the burst admits one listing");
    let err = list().await.expect_err("the second is throttled");
    let err = err.into_service_error();
    assert!(err.is_request_throttled_exception(), "{err:?}");
    assert_eq!(emulator.stats().list_snapshot_blocks.throttled, 1);
}

#[tokio::test]
async fn no_answer_arrives_before_the_fixed_latency() {
    let fixed = Duration::from_millis(150);
    let emulator = launch(EbsConfig {
        latency: Latency {
            fixed,
            jitter: Duration::from_millis(30),
        },
        snapshot_quota: Some(Quota {
            rate: 0.001,
            burst: 1.0,
        }),
        ..EbsConfig::new(vec![full("snap-slow")])
    })
    .await;
    let client = common::ebs(&emulator.url());

    let t = Instant::now();
    client
        .list_snapshot_blocks()
        .snapshot_id("snap-slow")
        .send()
        .await
        .expect("listing");
    assert!(t.elapsed() >= fixed, "listing after {:?}", t.elapsed());

    let t = Instant::now();
    assert_eq!(read(&client, "snap-slow", 0).await, Outcome::Served);
    assert!(t.elapsed() >= fixed, "block after {:?}", t.elapsed());

    let t = Instant::now();
    assert_eq!(
        read(&client, "snap-slow", 0).await,
        Outcome::Throttled(RequestThrottledExceptionReason::ResourceLevelThrottle)
    );
    assert!(t.elapsed() >= fixed, "throttle after {:?}", t.elapsed());

    // Many answers wait at once: 20 concurrent listings take nowhere near 20 x 150 ms... but
    // only the lower bound is asserted.
    let t = Instant::now();
    let all = futures::future::join_all((0..20).map(|_| {
        client
            .list_snapshot_blocks()
            .snapshot_id("snap-slow")
            .send()
    }))
    .await;
    assert!(all.iter().all(|r| r.is_ok()));
    assert!(t.elapsed() >= fixed);
}

#[tokio::test]
async fn injected_throttling_answers_account_throttled() {
    let emulator = launch(EbsConfig {
        throttle: 1.0,
        ..EbsConfig::new(vec![full("snap-i")])
    })
    .await;
    let client = common::ebs(&emulator.url());
    assert_eq!(
        read(&client, "snap-i", 0).await,
        Outcome::Throttled(RequestThrottledExceptionReason::AccountThrottled)
    );
    assert_eq!(emulator.stats().get_snapshot_block.throttled_injected, 1);
}

#[tokio::test]
async fn the_stats_endpoint_counts_what_was_served() {
    let emulator = launch(EbsConfig::new(vec![full("snap-s")])).await;
    let client = common::ebs(&emulator.url());
    for i in 0..3 {
        assert_eq!(read(&client, "snap-s", i).await, Outcome::Served);
    }
    client
        .list_snapshot_blocks()
        .snapshot_id("snap-s")
        .send()
        .await
        .expect("listing");
    let _ = client
        .get_snapshot_block()
        .snapshot_id("snap-nope")
        .block_index(0)
        .block_token("t0")
        .send()
        .await
        .expect_err("unknown snapshot");

    let (status, answer) = common::get(emulator.addr, forensnap_emulator::STATS_PATH).await;
    assert_eq!(status, 200, "{answer}");
    let over_http: StatsSnapshot = serde_json::from_str(common::body(&answer)).expect("JSON");
    assert_eq!(over_http, emulator.stats());
    assert_eq!(over_http.get_snapshot_block.served, 3);
    assert_eq!(over_http.get_snapshot_block.bytes, 3 * BLOCK_SIZE as u64);
    assert_eq!(over_http.get_snapshot_block.failed, 1);
    assert_eq!(over_http.list_snapshot_blocks.served, 1);
}
