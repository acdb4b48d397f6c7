//! Request quotas as AWS applies them to the EBS direct APIs: token buckets (a rate, and a burst
//! the bucket holds when idle), one per snapshot and one per account for GetSnapshotBlock, one
//! per account for ListSnapshotBlocks; each optional. A request takes one token from every
//! bucket it is subject to, or from none.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate limit: `rate` requests per second, and a bucket of `burst` tokens (full at start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests per second, sustained.
    pub rate: f64,
    /// Requests that may arrive at once after a quiet spell.
    pub burst: f64,
}

impl Quota {
    /// `rate` per second with a burst of `window` worth of the rate (at least one request).
    pub fn per_second(rate: f64, window: Duration) -> Quota {
        Quota {
            rate,
            burst: (rate * window.as_secs_f64()).floor().max(1.0),
        }
    }
}

/// Why a request was refused, as EBS names it in `RequestThrottledException.Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The account's bucket was empty.
    Account,
    /// The snapshot's bucket was empty.
    Resource,
}

impl Reason {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Account => "ACCOUNT_THROTTLED",
            Reason::Resource => "RESOURCE_LEVEL_THROTTLE",
        }
    }
}

/// A token bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Its rate and size.
    quota: Quota,
    /// Tokens held and when they were last counted.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(quota: Quota) -> Bucket {
        Bucket {
            quota,
            state: Mutex::new((quota.burst, Instant::now())),
        }
    }

    /// Tokens held now (refilled), under the caller's lock.
    fn refill(&self, state: &mut (f64, Instant), now: Instant) {
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.quota.rate).min(self.quota.burst);
        state.1 = now;
    }
}

/// Take one token from `resource` (a snapshot's bucket) and from `account`, from both or from
/// neither. The snapshot's bucket is named first when both are empty (the narrower limit).
pub(crate) fn take(resource: Option<&Bucket>, account: Option<&Bucket>) -> Result<(), Reason> {
    let now = Instant::now();
    // Locks are always taken in this order (snapshot, then account): no deadlock.
    let mut resource_state =
        resource.map(|b| (b, b.state.lock().unwrap_or_else(|e| e.into_inner())));
    let mut account_state = account.map(|b| (b, b.state.lock().unwrap_or_else(|e| e.into_inner())));
    if let Some((bucket, state)) = resource_state.as_mut() {
        bucket.refill(state, now);
        if state.0 < 1.0 {
            return Err(Reason::Resource);
        }
    }
    if let Some((bucket, state)) = account_state.as_mut() {
        bucket.refill(state, now);
        if state.0 < 1.0 {
            return Err(Reason::Account);
        }
    }
    for (_, state) in resource_state.iter_mut().chain(account_state.iter_mut()) {
        state.0 -= 1.0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_defaults_to_a_tenth_of_a_second_and_at_least_one() {
        assert_eq!(
            Quota::per_second(1000.0, Duration::from_millis(100)).burst,
            100.0
        );
        assert_eq!(
            Quota::per_second(5.0, Duration::from_millis(100)).burst,
            1.0
        );
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_refuses() {
        let bucket = Bucket::new(Quota {
            rate: 0.001,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert_eq!(take(Some(&bucket), None), Ok(()));
        }
        assert_eq!(take(Some(&bucket), None), Err(Reason::Resource));
    }

    #[test]
    fn both_or_neither() {
        let snapshot = Bucket::new(Quota {
            rate: 0.001,
            burst: 5.0,
        });
        let account = Bucket::new(Quota {
            rate: 0.001,
            burst: 2.0,
        });
        assert_eq!(take(Some(&snapshot), Some(&account)), Ok(()));
        assert_eq!(take(Some(&snapshot), Some(&account)), Ok(()));
        assert_eq!(take(Some(&snapshot), Some(&account)), Err(Reason::Account));
        // The refused request took nothing from the snapshot's bucket: 3 tokens are left.
        for _ in 0..3 {
            assert_eq!(take(Some(&snapshot), None), Ok(()));
        }
        assert_eq!(take(Some(&snapshot), None), Err(Reason::Resource));
    }

    #[test]
    fn no_bucket_admits_everything() {
        assert_eq!(take(None, None), Ok(()));
    }
}
