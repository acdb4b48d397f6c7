//! Waiting for snapshots: poll DescribeSnapshots with jittered exponential backoff until the
//! snapshot leaves `pending`, reporting progress, within a time limit.

use std::time::Duration;

use tokio::time::Instant;

use forensnap_ports::{CloudError, Ec2, SnapState, SnapshotInfo};

/// Polling schedule.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Give up after this long.
    pub limit: Duration,
}

impl Backoff {
    /// The wait before poll number `attempt` (0-based): doubling, capped, with full jitter
    /// between half and all of it so many waiters do not poll in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let half = base / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos().max(1) as u64))
    }
}

/// Why a wait ended without a completed snapshot.
#[derive(Debug)]
pub enum WaitError {
    /// DescribeSnapshots failed.
    Aws(CloudError),
    /// The snapshot is gone.
    Vanished,
    /// Still pending at the limit.
    TimedOut(SnapshotInfo),
}

/// Poll until `snapshot_id` is `completed` or `error`; `progress` sees every answer.
pub async fn until_settled<E: Ec2>(
    ec2: &E,
    snapshot_id: &str,
    backoff: Backoff,
    mut progress: impl FnMut(&SnapshotInfo),
) -> Result<SnapshotInfo, WaitError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let info = ec2
            .describe_snapshot(snapshot_id)
            .await
            .map_err(WaitError::Aws)?
            .value
            .ok_or(WaitError::Vanished)?;
        progress(&info);
        if info.state != SnapState::Pending {
            return Ok(info);
        }
        if started.elapsed() >= backoff.limit {
            return Err(WaitError::TimedOut(info));
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_stay_capped() {
        let backoff = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
            limit: Duration::MAX,
        };
        for attempt in 0..20 {
            let d = backoff.delay(attempt);
            let base = Duration::from_secs(2)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(30));
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }
}
