//! Per-request latency: a fixed part plus uniform jitter, waited with `tokio::time::sleep` so that
//! thousands of answers can be pending at once without a thread each.

use std::time::Duration;

/// How long the emulator waits before it answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Always waited.
    pub fixed: Duration,
    /// Up to this much more, uniformly at random.
    pub jitter: Duration,
}

impl Latency {
    /// `fixed_ms` plus up to `jitter_ms`.
    pub fn millis(fixed_ms: u64, jitter_ms: u64) -> Latency {
        Latency {
            fixed: Duration::from_millis(fixed_ms),
            jitter: Duration::from_millis(jitter_ms),
        }
    }

    /// One draw: the fixed part plus a uniform share of the jitter.
    pub fn draw(&self) -> Duration {
        let jitter = self.jitter.as_nanos().min(u64::MAX as u128) as u64;
        let extra = if jitter == 0 {
            0
        } else {
            fastrand::u64(0..jitter)
        };
        self.fixed + Duration::from_nanos(extra)
    }

    /// Wait one draw (nothing at all when there is no latency).
    pub async fn wait(&self) {
        let delay = self.draw();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_within_fixed_and_fixed_plus_jitter() {
        let latency = Latency::millis(100, 10);
        for _ in 0..1000 {
            let d = latency.draw();
            assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(110));
        }
        assert_eq!(Latency::default().draw(), Duration::ZERO);
    }
}
