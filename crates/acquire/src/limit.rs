//! Adaptive, bounded concurrency for block reads (additive increase, multiplicative decrease).
//!
//! EBS allows 1,000 GetSnapshotBlock requests per second per snapshot (not adjustable) and a
//! per-account ceiling shared by every snapshot being read. A reader starts modestly, adds one
//! slot after every `grow_after` calm completions, halves its slots on a throttle, and never
//! exceeds `max`. A token bucket paces starts under `per_second`, so one reader cannot burst
//! over the ceiling even while its slots are all free.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

struct State {
    /// Slots allowed now.
    allowed: usize,
    /// Slots taken.
    in_flight: usize,
    /// Calm completions since the last change.
    calm: usize,
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
    /// Calm completions before one more slot.
    grow_after: usize,
    /// Request starts per second at most.
    per_second: f64,
}

/// A taken slot; report how the request went with [`Permit::calm`] or [`Permit::throttled`],
/// or drop it (counts as neither).
pub struct Permit<'a> {
    limit: &'a AdaptiveLimit,
    done: bool,
}

impl AdaptiveLimit {
    /// Start with `initial` slots, at most `max`, pacing starts under `per_second`.
    pub fn new(initial: usize, max: usize, per_second: f64) -> Self {
        let max = max.max(1);
        AdaptiveLimit {
            state: Mutex::new(State {
                allowed: initial.clamp(1, max),
                in_flight: 0,
                calm: 0,
                tokens: per_second.max(1.0),
                refilled: Instant::now(),
            }),
            freed: Notify::new(),
            max,
            min: 1,
            grow_after: 16,
            per_second: per_second.max(1.0),
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
                s.tokens = (s.tokens + elapsed * self.per_second).min(self.per_second);
                s.refilled = now;
                if s.in_flight < s.allowed && s.tokens >= 1.0 {
                    s.tokens -= 1.0;
                    s.in_flight += 1;
                    return Permit {
                        limit: self,
                        done: false,
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

    fn release(&self, outcome: Option<bool>) {
        if let Ok(mut s) = self.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
            match outcome {
                Some(true) => {
                    s.calm += 1;
                    if s.calm >= self.grow_after && s.allowed < self.max {
                        s.allowed += 1;
                        s.calm = 0;
                    }
                }
                Some(false) => {
                    s.allowed = (s.allowed / 2).max(self.min);
                    s.calm = 0;
                }
                None => {}
            }
        }
        self.freed.notify_waiters();
    }
}

impl Permit<'_> {
    /// The request succeeded without throttling.
    pub fn calm(mut self) {
        self.done = true;
        self.limit.release(Some(true));
    }

    /// The request was throttled.
    pub fn throttled(mut self) {
        self.done = true;
        self.limit.release(Some(false));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limit.release(None);
        }
    }
}

/// The limits one block read passes: its snapshot's own (1,000 requests/s per snapshot, not
/// adjustable) and, when several snapshots are read at once, the account's shared one (1,000
/// requests/s per account by default). A throttle slows both: AWS does not always say which.
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

    /// Wait for the account's slot first (the scarcer one), then the snapshot's.
    pub async fn acquire(&self) -> Permits<'a> {
        let account = match self.account {
            Some(limit) => Some(limit.acquire().await),
            None => None,
        };
        Permits {
            account,
            snapshot: self.snapshot.acquire().await,
        }
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

    /// The request was throttled.
    pub fn throttled(self) {
        if let Some(account) = self.account {
            account.throttled();
        }
        self.snapshot.throttled();
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
        second.throttled();
        assert_eq!(
            (account.allowed(), b.allowed()),
            (1, 2),
            "a throttle slows both"
        );
        first.calm();
    }
}
