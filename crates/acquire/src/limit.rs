//! Adaptive, bounded concurrency for block reads (additive increase, multiplicative decrease,
//! as TCP does it).
//!
//! EBS allows 1,000 GetSnapshotBlock requests per second per snapshot (not adjustable) and a
//! per-account ceiling shared by every snapshot being read. Reads in flight needed to reach a
//! rate grow with latency (Little's law: 100 ms x 1,000/s = 100 reads), so the limiter finds
//! its level rather than being told it:
//!
//! * **slow start** -- one more slot per calm completion (doubling every round trip) until the
//!   first throttle;
//! * **congestion avoidance** -- after that, one more slot per `allowed` calm completions (one
//!   per round trip);
//! * **decrease** -- a throttle halves the slots, at most once per round trip: a throttled
//!   request that started before the last decrease says nothing new and is ignored (without
//!   this guard, the burst of throttles one overload produces halves the limit to 1);
//! * **pacing** -- a token bucket of a twentieth of a second's worth paces starts under
//!   `per_second`, so a reader cannot burst over a quota even while its slots are all free.
//!
//! [`Limits`] pairs a snapshot's limiter with the account's shared one, and a throttle slows the
//! one whose quota AWS names (`Reason`), both when it names none.

use std::sync::Mutex;
use std::time::Duration;

use forensnap_ports::ThrottleScope;
use tokio::sync::Notify;
use tokio::time::Instant;

struct State {
    /// Slots allowed now.
    allowed: usize,
    /// Slots taken.
    in_flight: usize,
    /// Calm completions since the last increase (congestion avoidance).
    calm: usize,
    /// Until the first throttle, every calm completion adds a slot.
    slow_start: bool,
    /// Decreases so far; a permit remembers the value it started under.
    epoch: u64,
    /// Token bucket: tokens available and when last refilled.
    tokens: f64,
    refilled: Instant,
}

/// The limiter; share it (by reference or `Arc`) among the tasks reading one snapshot.
pub struct AdaptiveLimit {
    state: Mutex<State>,
    freed: Notify,
    /// Never more slots than this.
    max: usize,
    /// Never fewer than this.
    min: usize,
    /// Request starts per second at most.
    per_second: f64,
    /// Tokens the bucket holds at most (the largest burst of starts).
    burst: f64,
}

/// A taken slot; report how the request went with [`Permit::calm`] or [`Permit::throttled`],
/// or drop it (counts as neither).
pub struct Permit<'a> {
    limit: &'a AdaptiveLimit,
    done: bool,
    /// The limiter's epoch when the request started.
    epoch: u64,
}

impl AdaptiveLimit {
    /// Start with `initial` slots, at most `max`, pacing starts under `per_second`.
    pub fn new(initial: usize, max: usize, per_second: f64) -> Self {
        let max = max.max(1);
        let per_second = per_second.max(1.0);
        let burst = (per_second / 20.0).max(1.0);
        AdaptiveLimit {
            state: Mutex::new(State {
                allowed: initial.clamp(1, max),
                in_flight: 0,
                calm: 0,
                slow_start: true,
                epoch: 0,
                tokens: burst,
                refilled: Instant::now(),
            }),
            freed: Notify::new(),
            max,
            min: 1,
            per_second,
            burst,
        }
    }

    /// Slots allowed now.
    pub fn allowed(&self) -> usize {
        self.state.lock().map(|s| s.allowed).unwrap_or(self.min)
    }

    /// Wait for a slot and a rate token.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.freed.notified();
            let wait = {
                let mut s = self.state.lock().expect("limit state");
                let now = Instant::now();
                let elapsed = now.duration_since(s.refilled).as_secs_f64();
                s.tokens = (s.tokens + elapsed * self.per_second).min(self.burst);
                s.refilled = now;
                if s.in_flight < s.allowed && s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    s.in_flight += 1;
                    return Permit {
                        limit: self,
                        done: false,
                        epoch: s.epoch,
                    };
                }
                if s.in_flight < s.allowed {
                    Some(Duration::from_secs_f64((1.0 - s.tokens) / self.per_second))
                } else {
                    None
                }
            };
            match wait {
                Some(delay) => tokio::time::sleep(delay).await,
                None => notified.await,
            }
        }
    }

    fn release(&self, outcome: Option<bool>, epoch: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
            match outcome {
                Some(true) if s.allowed < self.max => {
                    if s.slow_start {
                        s.allowed += 1;
                    } else {
                        s.calm += 1;
                        if s.calm >= s.allowed {
                            s.allowed += 1;
                            s.calm = 0;
                        }
                    }
                }
                Some(false) if epoch == s.epoch => {
                    s.allowed = (s.allowed / 2).max(self.min);
                    s.calm = 0;
                    s.slow_start = false;
                    s.epoch += 1;
                }
                _ => {}
            }
        }
        self.freed.notify_waiters();
    }
}

impl Permit<'_> {
    /// The request succeeded without throttling.
    pub fn calm(mut self) {
        self.done = true;
        self.limit.release(Some(true), self.epoch);
    }

    /// The request was throttled.
    pub fn throttled(mut self) {
        self.done = true;
        self.limit.release(Some(false), self.epoch);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limit.release(None, self.epoch);
        }
    }
}

/// The limits one block read passes: its snapshot's own (1,000 requests/s per snapshot, not
/// adjustable) and, when several snapshots are read at once, the account's shared one (1,000
/// requests/s per account by default).
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// The snapshot's limiter.
    pub snapshot: &'a AdaptiveLimit,
    /// The account's limiter, shared by every snapshot read at the same time.
    pub account: Option<&'a AdaptiveLimit>,
}

impl<'a> From<&'a AdaptiveLimit> for Limits<'a> {
    fn from(snapshot: &'a AdaptiveLimit) -> Self {
        Limits::single(snapshot)
    }
}

/// Permits of [`Limits`]: the account's (when shared) and the snapshot's.
pub struct Permits<'a> {
    account: Option<Permit<'a>>,
    snapshot: Permit<'a>,
}

impl<'a> Limits<'a> {
    /// Only the snapshot's own limiter.
    pub fn single(snapshot: &'a AdaptiveLimit) -> Self {
        Limits {
            snapshot,
            account: None,
        }
    }

    /// The snapshot's limiter under the account's shared one.
    pub fn shared(snapshot: &'a AdaptiveLimit, account: &'a AdaptiveLimit) -> Self {
        Limits {
            snapshot,
            account: Some(account),
        }
    }

    /// Wait for the snapshot's slot first (its own quota, no one else's), then the account's:
    /// an account slot is never held while waiting for a snapshot's.
    pub async fn acquire(&self) -> Permits<'a> {
        let snapshot = self.snapshot.acquire().await;
        let account = match self.account {
            Some(limit) => Some(limit.acquire().await),
            None => None,
        };
        Permits { account, snapshot }
    }
}

impl Permits<'_> {
    /// The request succeeded without throttling.
    pub fn calm(self) {
        if let Some(account) = self.account {
            account.calm();
        }
        self.snapshot.calm();
    }

    /// The request was throttled on `scope`'s quota: that limiter slows (both when AWS named
    /// none); the other counts the request as neither calm nor throttled.
    pub fn throttled(self, scope: ThrottleScope) {
        let (account, snapshot) = match scope {
            ThrottleScope::Snapshot => (false, true),
            ThrottleScope::Account => (true, false),
            ThrottleScope::Unknown => (true, true),
        };
        if let Some(permit) = self.account {
            if account {
                permit.throttled();
            } else {
                drop(permit);
            }
        }
        if snapshot {
            self.snapshot.throttled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grows_when_calm_halves_on_throttle_and_stays_bounded() {
        let limit = AdaptiveLimit::new(4, 10, 10_000.0);
        for _ in 0..1_000 {
            limit.acquire().await.calm();
        }
        assert_eq!(limit.allowed(), 10, "grew to the ceiling, no further");
        limit.acquire().await.throttled();
        assert_eq!(limit.allowed(), 5);
        for _ in 0..5 {
            limit.acquire().await.throttled();
        }
        assert_eq!(limit.allowed(), 1, "never below one");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_throttles_from_one_round_trip_halves_once() {
        let limit = AdaptiveLimit::new(8, 8, 10_000.0);
        let mut permits = Vec::new();
        for _ in 0..8 {
            permits.push(limit.acquire().await);
        }
        for permit in permits {
            permit.throttled();
        }
        assert_eq!(
            limit.allowed(),
            4,
            "eight throttles of one round trip: one halving"
        );
        limit.acquire().await.throttled();
        assert_eq!(
            limit.allowed(),
            2,
            "a request started after it halves again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_doubles_per_round_trip_then_adds_one() {
        let limit = AdaptiveLimit::new(1, 1_000, 1_000_000.0);
        let round_trip = || async {
            let mut permits = Vec::new();
            for _ in 0..limit.allowed() {
                permits.push(limit.acquire().await);
            }
            for permit in permits {
                permit.calm();
            }
        };
        for _ in 0..5 {
            round_trip().await;
        }
        assert_eq!(limit.allowed(), 32, "1, 2, 4, 8, 16, 32");
        limit.acquire().await.throttled();
        assert_eq!(limit.allowed(), 16);
        round_trip().await;
        assert_eq!(
            limit.allowed(),
            17,
            "after a throttle: one slot per round trip"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_slows_the_quota_aws_names() {
        let account = AdaptiveLimit::new(8, 8, 10_000.0);
        let snapshot = AdaptiveLimit::new(8, 8, 10_000.0);
        let limits = Limits::shared(&snapshot, &account);
        limits.acquire().await.throttled(ThrottleScope::Snapshot);
        assert_eq!((snapshot.allowed(), account.allowed()), (4, 8));
        limits.acquire().await.throttled(ThrottleScope::Account);
        assert_eq!((snapshot.allowed(), account.allowed()), (4, 4));
        limits.acquire().await.throttled(ThrottleScope::Unknown);
        assert_eq!((snapshot.allowed(), account.allowed()), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_in_flight_than_allowed() {
        let limit = AdaptiveLimit::new(3, 3, 10_000.0);
        let a = limit.acquire().await;
        let b = limit.acquire().await;
        let c = limit.acquire().await;
        let fourth = tokio::time::timeout(Duration::from_secs(5), limit.acquire()).await;
        assert!(fourth.is_err(), "a fourth slot waits");
        drop(a);
        let d = tokio::time::timeout(Duration::from_secs(5), limit.acquire()).await;
        assert!(d.is_ok(), "a freed slot is taken");
        drop((b, c, d));
    }

    #[tokio::test(start_paused = true)]
    async fn starts_are_paced_under_the_rate_ceiling() {
        let limit = AdaptiveLimit::new(100, 100, 50.0);
        let started = Instant::now();
        for _ in 0..150 {
            limit.acquire().await.calm();
        }
        // 50 tokens up front, then 50 per second: 100 more take at least 2 s of (virtual) time.
        assert!(
            started.elapsed() >= Duration::from_millis(1_990),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_account_limit_bounds_every_snapshot_read_under_it() {
        let account = AdaptiveLimit::new(2, 2, 10_000.0);
        let (a, b) = (
            AdaptiveLimit::new(4, 4, 10_000.0),
            AdaptiveLimit::new(4, 4, 10_000.0),
        );
        let first = Limits::shared(&a, &account).acquire().await;
        let second = Limits::shared(&b, &account).acquire().await;
        let third = tokio::time::timeout(
            Duration::from_secs(5),
            Limits::shared(&a, &account).acquire(),
        )
        .await;
        assert!(
            third.is_err(),
            "two snapshots share the account's two slots"
        );
        second.throttled(ThrottleScope::Unknown);
        assert_eq!(
            (account.allowed(), b.allowed()),
            (1, 2),
            "a throttle slows both"
        );
        first.calm();
    }
}
