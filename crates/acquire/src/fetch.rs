//! One verified block: fetched under the adaptive limit, checked against AWS's SHA-256 and
//! length, fetched again on a mismatch (a corrupted block is never returned), retried with
//! jittered exponential backoff on throttling and transient failures. The SHA-256 is computed
//! once, off the async runtime, and serves both the check and the block map.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::limit::Limits;
use forensnap_ports::{BlockSource, ListedBlock, SourceError};

/// Retry rules for block reads.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Attempts per block across throttling and transient failures.
    pub max_attempts: u32,
    /// Extra fetches of a block whose bytes do not match AWS's checksum.
    pub corrupt_refetches: u32,
    /// First backoff.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
    /// Expected block length (EBS: 524,288).
    pub block_size: u64,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            max_attempts: 10,
            corrupt_refetches: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(10),
            block_size: forensnap_core::layout::BLOCK_SIZE,
        }
    }
}

impl FetchPolicy {
    /// Full-jitter exponential backoff before attempt `attempt` (1-based retry count).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1 << attempt.min(20))
            .min(self.max_delay);
        Duration::from_nanos(fastrand::u64(0..=cap.as_nanos().max(1) as u64))
    }
}

/// A block whose bytes match AWS's checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBlock {
    /// Block index.
    pub index: u64,
    /// The bytes (shared, not copied, on their way to the part upload).
    pub data: Bytes,
    /// Our SHA-256, hex.
    pub sha256: String,
    /// AWS's `x-amz-Checksum`.
    pub aws_checksum: String,
    /// Requests it took.
    pub attempts: u32,
    /// Of which mismatching answers discarded.
    pub discarded: u32,
}

/// A block that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Retries ran out, or the failure was not retryable.
    #[error(
        "block {index} of snapshot {snapshot_id} could not be read after {attempts} attempts: {last}"
    )]
    Failed {
        /// Snapshot.
        snapshot_id: String,
        /// Block index.
        index: u64,
        /// Requests made.
        attempts: u32,
        /// The last error.
        last: SourceError,
    },
    /// Every answer disagreed with AWS's own checksum.
    #[error(
        "block {index} of snapshot {snapshot_id} never matched AWS's checksum in {attempts} reads ({detail}); nothing of it was stored"
    )]
    Corrupt {
        /// Snapshot.
        snapshot_id: String,
        /// Block index.
        index: u64,
        /// Reads made.
        attempts: u32,
        /// What disagreed, last time.
        detail: String,
    },
}

/// Block reads this process retried, throttled and not, since it started: what the daemon's
/// metrics report (`forensnap_block_reads_throttled_total`, `..._retried_total`).
static THROTTLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static RETRIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// (throttled, retried) block reads of this process so far.
pub fn read_counters() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (THROTTLED.load(Relaxed), RETRIED.load(Relaxed))
}

/// Read and verify one block.
pub async fn fetch_verified<'l, S: BlockSource>(
    source: &S,
    limits: impl Into<Limits<'l>>,
    policy: &FetchPolicy,
    snapshot_id: &str,
    block: &ListedBlock,
) -> Result<VerifiedBlock, FetchError> {
    let limits = limits.into();
    let mut attempts = 0;
    let mut discarded = 0;
    let mut retries = 0;
    loop {
        attempts += 1;
        let permit = limits.acquire().await;
        let answer = source.get(snapshot_id, block.index, &block.token).await;
        let fetched = match answer {
            Ok(fetched) => {
                permit.calm();
                fetched
            }
            Err(err) => {
                match &err {
                    SourceError::Throttled(scope, _) => {
                        THROTTLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        permit.throttled(*scope)
                    }
                    _ => drop(permit),
                }
                if matches!(err, SourceError::Fatal(_)) || attempts >= policy.max_attempts {
                    return Err(FetchError::Failed {
                        snapshot_id: snapshot_id.into(),
                        index: block.index,
                        attempts,
                        last: err,
                    });
                }
                retries += 1;
                RETRIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(policy.delay(retries)).await;
                continue;
            }
        };
        let expected_len = policy.block_size;
        let checksum = fetched.checksum.clone();
        let algorithm = fetched.algorithm.clone();
        let data_length = fetched.data_length;
        let data = fetched.data;
        let (data, digest) = tokio::task::spawn_blocking(move || {
            let digest = Sha256::digest(&data);
            (data, digest)
        })
        .await
        .map_err(|e| FetchError::Failed {
            snapshot_id: snapshot_id.into(),
            index: block.index,
            attempts,
            last: SourceError::Transient(format!("hashing task failed: {e}")),
        })?;
        let ours = base64::engine::general_purpose::STANDARD.encode(digest);
        let problem = if !algorithm.eq_ignore_ascii_case("SHA256") {
            Some(format!("checksum algorithm {algorithm:?}, expected SHA256"))
        } else if data.len() as u64 != expected_len || data_length != expected_len {
            Some(format!(
                "{} bytes (x-amz-Data-Length {data_length}), expected {expected_len}",
                data.len()
            ))
        } else if ours != checksum {
            Some(format!("SHA-256 {ours} but x-amz-Checksum {checksum}"))
        } else {
            None
        };
        match problem {
            None => {
                return Ok(VerifiedBlock {
                    index: block.index,
                    data,
                    sha256: hex::encode(digest),
                    aws_checksum: checksum,
                    attempts,
                    discarded,
                });
            }
            Some(detail) => {
                discarded += 1;
                tracing::warn!(snapshot_id, index = block.index, %detail, "block does not match AWS's checksum; fetching it again");
                if discarded > policy.corrupt_refetches {
                    return Err(FetchError::Corrupt {
                        snapshot_id: snapshot_id.into(),
                        index: block.index,
                        attempts,
                        detail,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::AdaptiveLimit;
    use crate::memory::MemorySource;

    fn policy() -> FetchPolicy {
        FetchPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            block_size: 4096,
            ..FetchPolicy::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_corrupted_answer_is_fetched_again_and_never_returned() {
        let source = MemorySource::pattern(4096, 16, &[3, 5]);
        source.corrupt(5, 2);
        let limit = AdaptiveLimit::new(2, 4, 1_000.0);
        let block = ListedBlock {
            index: 5,
            token: source.token(5),
        };
        let got = fetch_verified(&source, &limit, &policy(), "snap-1", &block)
            .await
            .expect("verified");
        assert_eq!(got.data, source.block(5));
        assert_eq!((got.attempts, got.discarded), (3, 2));
        assert_eq!(got.sha256, hex::encode(Sha256::digest(source.block(5))));
    }

    #[tokio::test(start_paused = true)]
    async fn many_readers_never_exceed_the_limit() {
        use futures::StreamExt;
        use std::sync::atomic::Ordering;
        let indexes: Vec<u64> = (0..300).collect();
        let source = MemorySource::pattern(4096, 300, &indexes);
        let limit = AdaptiveLimit::new(2, 6, 100_000.0);
        let policy = policy();
        let blocks: Vec<ListedBlock> = indexes
            .iter()
            .map(|&i| ListedBlock {
                index: i,
                token: source.token(i),
            })
            .collect();
        let read: Vec<_> = futures::stream::iter(
            blocks
                .iter()
                .map(|b| fetch_verified(&source, &limit, &policy, "snap-1", b)),
        )
        .buffer_unordered(64)
        .collect()
        .await;
        assert!(read.iter().all(Result::is_ok));
        assert!(
            source.peak_in_flight.load(Ordering::SeqCst) <= 6,
            "peak {}",
            source.peak_in_flight.load(Ordering::SeqCst)
        );
        assert_eq!(
            limit.allowed(),
            6,
            "calm reads grew the limit to its ceiling"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_that_stays_corrupt_fails_naming_snapshot_and_index() {
        let source = MemorySource::pattern(4096, 16, &[7]);
        source.corrupt(7, 100);
        let limit = AdaptiveLimit::new(2, 4, 1_000.0);
        let block = ListedBlock {
            index: 7,
            token: source.token(7),
        };
        let err = fetch_verified(&source, &limit, &policy(), "snap-9", &block)
            .await
            .expect_err("corrupt");
        let text = err.to_string();
        assert!(
            text.contains("block 7 of snapshot snap-9") && text.contains("never matched"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_and_shrinks_the_limit_and_fatal_errors_are_not_retried() {
        let source = MemorySource::pattern(4096, 16, &[1]);
        source.throttle_next(3);
        let limit = AdaptiveLimit::new(8, 8, 1_000.0);
        let block = ListedBlock {
            index: 1,
            token: source.token(1),
        };
        let got = fetch_verified(&source, &limit, &policy(), "snap-1", &block)
            .await
            .expect("after throttling");
        assert_eq!(got.attempts, 4);
        assert_eq!(
            limit.allowed(),
            2,
            "halved three times to one, then one calm round trip added one"
        );

        let bad = ListedBlock {
            index: 1,
            token: "wrong".into(),
        };
        let err = fetch_verified(&source, &limit, &policy(), "snap-1", &bad)
            .await
            .expect_err("fatal");
        assert!(
            matches!(err, FetchError::Failed { attempts: 1, .. }),
            "{err}"
        );
    }
}
